/* net.c: the client's sockets: getaddrinfo + non-blocking connect with a deadline, and
 * send/recv guarded by poll() so every wait is bounded. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../protocol/err.h"

/* net_wait_sent(): yields before it naps, naps from 20 us doubling up to 1 ms. */
#define NET_SENT_SPINS 16
#define NET_SENT_NAP_MIN_NS 20000L
#define NET_SENT_NAP_MAX_NS 1000000L

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; 0, or SD_ERR_IO with errno ETIMEDOUT. */
static int
wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p;
	long long left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return SD_ERR_IO;
		}
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return SD_ERR_IO;
		if (n > 0)
			return 0;
	}
}

static int
connect_one(const struct addrinfo *ai, int timeout_ms, int *out)
{
	int fd, err = 0, flags, one = 1;
	socklen_t len = sizeof(err);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return SD_ERR_IO;
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		goto fail;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS)
			goto fail;
		if (wait_fd(fd, POLLOUT, now_ms() + timeout_ms) != 0)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			goto fail;
		if (err != 0) {
			errno = err;
			goto fail;
		}
	}
	/* Small requests (900, 825 ...) should leave at once, not wait for Nagle. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*out = fd;
	return 0;
fail:
	err = errno;
	close(fd);
	errno = err;
	return SD_ERR_IO;
}

int
net_connect(const char *host, const char *port, int timeout_ms, int *fd, char *why,
    size_t why_cap)
{
	struct addrinfo hints, *res = NULL, *ai;
	int gai, r = SD_ERR_IO, last_errno = 0;

	if (host == NULL || port == NULL || fd == NULL)
		return SD_ERR_INVALID_ARG;
	*fd = -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	gai = getaddrinfo(host, port, &hints, &res);
	if (gai == EAI_ADDRFAMILY || gai == EAI_NONAME) {
		/* AI_ADDRCONFIG hides ::1 on hosts with no IPv6 address but loopback; ask again. */
		hints.ai_flags = AI_NUMERICSERV;
		gai = getaddrinfo(host, port, &hints, &res);
	}
	if (gai != 0) {
		snprintf(why, why_cap, "cannot resolve %s: %s", host, gai_strerror(gai));
		return SD_ERR_IO;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((r = connect_one(ai, timeout_ms, fd)) == 0)
			break;
		last_errno = errno;
	}
	freeaddrinfo(res);
	if (r != 0) {
		snprintf(why, why_cap, "cannot connect to %s port %s: %s", host, port,
		    last_errno == ETIMEDOUT ? "connection timed out" : strerror(last_errno));
		errno = last_errno;
	}
	return r;
}

int
net_sendv(int fd, struct iovec *iov, size_t n_iov, int timeout_ms)
{
	struct msghdr mh;
	ssize_t n;
	size_t done;
	int r;

	for (;;) {
		while (n_iov > 0 && iov->iov_len == 0) {
			iov++;
			n_iov--;
		}
		if (n_iov == 0)
			return 0;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = n_iov;
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(fd, POLLOUT, now_ms() + timeout_ms)) != 0)
				return r;
			continue;
		}
		if (n < 0)
			return SD_ERR_IO;
		/* Past what was taken: whole pieces dropped, the first one left shortened. */
		for (done = (size_t)n; done > 0 && n_iov > 0; ) {
			if (done >= iov->iov_len) {
				done -= iov->iov_len;
				iov->iov_len = 0;
				iov++;
				n_iov--;
			} else {
				iov->iov_base = (uint8_t *)iov->iov_base + done;
				iov->iov_len -= done;
				done = 0;
			}
		}
	}
}

int
net_send2(int fd, const void *a, size_t a_len, const void *b, size_t b_len, int timeout_ms)
{
	struct iovec iov[2];

	iov[0].iov_base = (void *)(uintptr_t)a;
	iov[0].iov_len = a_len;
	iov[1].iov_base = (void *)(uintptr_t)b;
	iov[1].iov_len = b_len;
	return net_sendv(fd, iov, 2, timeout_ms);
}

int
net_recv(int fd, void *buf, size_t cap, size_t *got, int timeout_ms)
{
	ssize_t n;
	int r;
	long long deadline = now_ms() + timeout_ms;

	*got = 0;
	for (;;) {
		n = recv(fd, buf, cap, 0);
		if (n >= 0) {
			*got = (size_t)n;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return SD_ERR_IO;
		if ((r = wait_fd(fd, POLLIN, deadline)) != 0)
			return r;
	}
}

int
net_wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };

	return poll(&p, 1, timeout_ms) > 0;
}

int
net_wait_sent(int fd, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct timespec nap = { 0, 0 };
	int queued, spins = 0;

	/* No poll() event says "send queue empty": ask the kernel, napping a little longer each
	 * time (a loopback ACK takes microseconds, a real network's a round trip). */
	for (;;) {
		if (ioctl(fd, SIOCOUTQ, &queued) != 0)
			return SD_ERR_IO;
		if (queued == 0)
			return 0;
		if (now_ms() >= deadline) {
			errno = ETIMEDOUT;
			return SD_ERR_IO;
		}
		if (spins < NET_SENT_SPINS) {
			spins++;
			sched_yield();
			continue;
		}
		nap.tv_nsec = nap.tv_nsec == 0 ? NET_SENT_NAP_MIN_NS : nap.tv_nsec * 2;
		if (nap.tv_nsec > NET_SENT_NAP_MAX_NS)
			nap.tv_nsec = NET_SENT_NAP_MAX_NS;
		nanosleep(&nap, NULL);
	}
}
