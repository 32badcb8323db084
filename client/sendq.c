/* sendq.c: the sending thread of one upload (sendq.h). A ring of SENDQ_DEPTH lists under one
 * mutex: the caller fills the tail, the thread writes the head with net_sendv() outside the
 * lock. The first failure is kept, and everything after it is dropped unwritten. */
#include "sendq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

struct sendq_list {
	struct iovec iov[SENDQ_IOV_MAX];
	size_t n;
};

struct sendq {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;     /* a list queued or written, a failure, or the end asked */
	int sock;
	int timeout_ms;
	struct sendq_list lists[SENDQ_DEPTH];
	unsigned long long pushed;  /* lists queued so far */
	unsigned long long written; /* lists written (or dropped after a failure) so far */
	int failed_errno;           /* 0, or why a write failed */
	int stop;                   /* no more lists: the thread ends once the queue is empty */
	int drop;                   /* sendq_abort(): the thread ends without writing more */
};

static void *
sendq_run(void *arg)
{
	struct sendq *q = arg;
	struct sendq_list *l;
	int failed;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (q->written == q->pushed && !q->stop && !q->drop)
			pthread_cond_wait(&q->changed, &q->lock);
		if (q->drop || q->written == q->pushed)
			break;
		l = &q->lists[q->written % SENDQ_DEPTH];
		failed = 0;
		if (q->failed_errno == 0) {
			pthread_mutex_unlock(&q->lock);
			if (net_sendv(q->sock, l->iov, l->n, q->timeout_ms) != 0)
				failed = errno != 0 ? errno : EIO;
			pthread_mutex_lock(&q->lock);
		}
		if (failed != 0 && q->failed_errno == 0)
			q->failed_errno = failed;
		q->written++;
		pthread_cond_broadcast(&q->changed);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int
sendq_start(struct sendq **qp, int sock, int timeout_ms)
{
	struct sendq *q;
	int r;

	*qp = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->sock = sock;
	q->timeout_ms = timeout_ms;
	if ((r = pthread_mutex_init(&q->lock, NULL)) != 0) {
		free(q);
		errno = r;
		return -1;
	}
	if ((r = pthread_cond_init(&q->changed, NULL)) != 0) {
		pthread_mutex_destroy(&q->lock);
		free(q);
		errno = r;
		return -1;
	}
	if ((r = pthread_create(&q->thread, NULL, sendq_run, q)) != 0) {
		pthread_cond_destroy(&q->changed);
		pthread_mutex_destroy(&q->lock);
		free(q);
		errno = r;
		return -1;
	}
	*qp = q;
	return 0;
}

/* With the lock held: waits until at most max_pending lists are not yet written. */
static int
wait_locked(struct sendq *q, unsigned max_pending)
{
	while (q->failed_errno == 0 && q->pushed - q->written > max_pending)
		pthread_cond_wait(&q->changed, &q->lock);
	if (q->failed_errno != 0) {
		errno = q->failed_errno;
		return -1;
	}
	return 0;
}

int
sendq_push(struct sendq *q, const struct iovec *iov, size_t n)
{
	struct sendq_list *l;
	int r;

	if (n > SENDQ_IOV_MAX) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	if ((r = wait_locked(q, SENDQ_DEPTH - 1)) == 0) {
		l = &q->lists[q->pushed % SENDQ_DEPTH];
		memcpy(l->iov, iov, n * sizeof(*iov));
		l->n = n;
		q->pushed++;
		pthread_cond_broadcast(&q->changed);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

int
sendq_wait(struct sendq *q, unsigned max_pending)
{
	int r;

	pthread_mutex_lock(&q->lock);
	r = wait_locked(q, max_pending);
	pthread_mutex_unlock(&q->lock);
	return r;
}

static void
sendq_end(struct sendq *q, int drop)
{
	pthread_mutex_lock(&q->lock);
	q->stop = 1;
	q->drop = drop;
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	pthread_cond_destroy(&q->changed);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int
sendq_finish(struct sendq *q)
{
	int failed;

	pthread_mutex_lock(&q->lock);
	(void)wait_locked(q, 0);
	failed = q->failed_errno;
	pthread_mutex_unlock(&q->lock);
	sendq_end(q, 0);
	if (failed != 0) {
		errno = failed;
		return -1;
	}
	return 0;
}

void
sendq_abort(struct sendq *q)
{
	if (q != NULL)
		sendq_end(q, 1);
}
