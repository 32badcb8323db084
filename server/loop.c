/* loop.c: the listening socket and the worker threads, each running an epoll loop over its
 * own connections with a periodic tick for timeouts and for the graceful stop. */
#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../db/db.h"
#include "../protocol/err.h"
#include "conn.h"
#include "handlers.h"
#include "log.h"
#include "put.h"
#include "transport.h"

/* A worker's statements wait at most this long for another process's write lock (a backup,
 * sealdrop-db, a second server): the wait blocks the worker's whole epoll loop, so a locked
 * database costs the request a 1607 after 1 s instead of freezing every connection of the
 * worker for the 5 s that db_open sets (kept for start-up and the inspect tool). Our own
 * transactions hold the lock for milliseconds. */
#define LOOP_DB_BUSY_MS 1000u
#define LOOP_MAX_EVENTS 64
/* Milliseconds between timeout checks. */
#define LOOP_TICK_MS 250
#define LOOP_ACCEPTS_PER_WAKE 64
#define LOOP_BACKLOG 4096
/* After this many connections were freed, the next tick gives free heap pages back to the
 * system (malloc_trim): a burst of connections must not leave the server's RSS at its peak. */
#define LOOP_TRIM_AFTER 256u
/* Under AddressSanitizer the heap is its allocator's, not glibc's: malloc_trim has nothing to
 * give back there, and walking glibc's unused arenas crashed it once at a graceful stop. */
#if defined(__SANITIZE_ADDRESS__)
#define SD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SD_ASAN 1
#endif
#endif

/* One worker thread: its epoll set, its connections and what they share (env). */
struct worker {
	struct server *srv;
	const struct server_config *cfg;
	struct conn_env env;      /* database, clock, read buffer, closing count */
	int index;
	int epfd;
	int wake_fd;              /* eventfd: the main thread asks for a graceful stop */
	int listening;            /* 1 while the listening socket is in epfd */
	struct conn *conns;       /* all connections of this worker (list) */
	size_t nconns;
	size_t freed;             /* connections freed since the last malloc_trim */
	int nodelay;              /* accepted sockets: 0 unknown, 1 inherit TCP_NODELAY from the
	                           * listener (Linux), -1 need a setsockopt each */
	int draining;             /* a stop was asked: no accepts, close idle connections */
	int64_t drain_deadline_ms;
	int64_t next_expiry_ms;   /* worker 0: next sweep of expired pending registrations */
	pthread_t thread;
	int started;
};

struct server {
	struct server_config cfg;
	int listen_fd;
	uint16_t port;
	atomic_uint nconns;   /* over all workers, for the global cap */
	unsigned nworkers;
	struct worker *workers;
};

/* epoll tags for the two descriptors that are not connections. */
static char tag_listen;
static char tag_wake;

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Makes epoll wait for what c wants now. */
static void
sync_interest(struct worker *w, struct conn *c)
{
	struct epoll_event ev;
	unsigned want = conn_want(c);
	uint32_t events = ((want & CONN_WANT_READ) ? EPOLLIN : 0u) |
	    ((want & CONN_WANT_WRITE) ? EPOLLOUT : 0u);

	if (c->closing || events == c->events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->tr.fd, &ev) != 0) {
		conn_close_later(c);
		return;
	}
	c->events = events;
}

static void
unlink_conn(struct worker *w, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	w->nconns--;
}

static void
drop_conn(struct worker *w, struct conn *c)
{
	unlink_conn(w, c);
	/* No EPOLL_CTL_DEL: closing the socket (conn_free; nothing else holds it) takes it out of
	 * the epoll set. */
	conn_free(c);
	atomic_fetch_sub(&w->srv->nconns, 1u);
}

/* Frees the connections marked closing (never while an event batch still points at them). */
static void
reap(struct worker *w)
{
	struct conn *c, *next;

	if (w->env.nclosing == 0)
		return;
	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->closing)
			continue;
		conn_log_end(c, "connection", "closed");
		drop_conn(w, c);
		w->freed++;
	}
	w->env.nclosing = 0;
}

static void
peer_string(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char addr[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		snprintf(out, cap, "%s:%u", addr, (unsigned)ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		snprintf(out, cap, "[%s]:%u", addr, (unsigned)ntohs(in6->sin6_port));
	} else {
		snprintf(out, cap, "?");
	}
}

static void
listen_pause(struct worker *w)
{
	if (!w->listening)
		return;
	(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->srv->listen_fd, NULL);
	w->listening = 0;
}

static void
listen_resume(struct worker *w)
{
	struct epoll_event ev;

	if (w->listening || w->draining)
		return;
	memset(&ev, 0, sizeof(ev));
	/* EPOLLEXCLUSIVE: one worker wakes per new connection, not all of them. */
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.ptr = &tag_listen;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->srv->listen_fd, &ev) == 0)
		w->listening = 1;
}

/* A connection over the accepted socket fd, in w's list and epoll set; fd is closed on
 * failure. 0 or -1. */
static int
add_conn(struct worker *w, int fd, const char *peer)
{
	struct conn_transport tr;
	struct epoll_event ev;
	struct conn *c;

	/* Version 4 on: the first bytes tell TLS from version 3 (transport.h). */
	if (w->cfg->tls_creds == NULL)
		conn_transport_plain(&tr, fd);
	else if (transport_detect(&tr, fd, w->cfg->tls_creds) != 0) {
		close(fd);
		return -1;
	}
	if ((c = conn_new(&w->env, &tr, peer)) == NULL) {
		tr.ops->close(&tr);
		return -1;
	}
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		unlink_conn(w, c);
		conn_free(c);
		return -1;
	}
	c->events = EPOLLIN;
	return 0;
}

/* Replies are small and answer requests: no Nagle delay. The listener has TCP_NODELAY set,
 * which Linux passes on to the sockets it accepts; the first accepted socket shows whether
 * it did, and only if not does every socket get its own setsockopt. */
static void
set_nodelay(struct worker *w, int fd)
{
	int v = 0, one = 1;
	socklen_t len = sizeof(v);

	if (w->nodelay == 0)
		w->nodelay = getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v != 0 ?
		    1 : -1;
	if (w->nodelay < 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
accept_some(struct worker *w)
{
	struct server *s = w->srv;
	struct sockaddr_storage ss;
	char peer[CONN_PEER_MAX];
	socklen_t sl;
	int i, fd;

	for (i = 0; i < LOOP_ACCEPTS_PER_WAKE; i++) {
		sl = sizeof(ss);
		fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of descriptors: stop polling the listener until the next
				 * tick, or the level-triggered event would spin. */
				log_event(w->index, NULL, NULL, NULL, "accept", "failed: %s; "
				    "pausing", strerror(errno));
				listen_pause(w);
			}
			return;
		}
		peer_string(&ss, peer, sizeof(peer));
		if (atomic_fetch_add(&s->nconns, 1u) >= s->cfg.max_connections) {
			atomic_fetch_sub(&s->nconns, 1u);
			log_event(w->index, peer, NULL, NULL, "connection",
			    "refused: %u connections open (--max-connections)",
			    s->cfg.max_connections);
			close(fd);
			continue;
		}
		set_nodelay(w, fd);
		if (add_conn(w, fd, peer) != 0) {
			atomic_fetch_sub(&s->nconns, 1u);
			continue;
		}
		log_event(w->index, peer, NULL, NULL, "connection", "accepted");
	}
}

/* Once per LOOP_TICK_MS: deadlines, the graceful stop, a paused listener. */
static void
tick(struct worker *w)
{
	struct conn *c;

	for (c = w->conns; c != NULL; c = c->next) {
		if (conn_check_timeouts(c, w->env.now_ms) == 0 && w->draining && !c->closing &&
		    !conn_busy(c))
			conn_close_later(c);
		/* A reply the timer queued (1604 after 901, ERROR 8) may wait for the socket to be
		 * writable, and its end for the peer's input (a lingering close). */
		sync_interest(w, c);
	}
	if (!w->listening && !w->draining)
		listen_resume(w);
	put_expire_tick(w->env.db, w->cfg->storage_dir, w->env.now_ms, w->index);
	if (w->index == 0 && w->env.now_ms >= w->next_expiry_ms) {
		if (w->next_expiry_ms != 0)  /* the start swept already */
			handlers_expire_pending(&w->env);
		w->next_expiry_ms = w->env.now_ms + handlers_pending_sweep_ms(&w->env);
	}
	if (w->freed >= LOOP_TRIM_AFTER) {
		/* glibc keeps freed memory in its arenas; the connections' buffers and the
		 * receives' reassemblers of a burst would otherwise stay resident. */
#if defined(__GLIBC__) && !defined(SD_ASAN)
		(void)malloc_trim(0);
#endif
		w->freed = 0;
	}
}

static void
start_drain(struct worker *w)
{
	uint64_t v;

	while (read(w->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	if (w->draining)
		return;
	w->draining = 1;
	w->drain_deadline_ms = w->env.now_ms + (int64_t)w->cfg->grace * 1000;
	listen_pause(w);
	tick(w);
}

/* One batch of readiness: accepts, the stop request, connections. A connection is only
 * told what happened; what it wants polled next is asked afterwards. */
static void
dispatch(struct worker *w, const struct epoll_event *evs, int n)
{
	struct conn *c;
	int i;

	for (i = 0; i < n; i++) {
		void *p = evs[i].data.ptr;
		uint32_t e = evs[i].events;

		if (p == &tag_listen) {
			if (!w->draining)
				accept_some(w);
			continue;
		}
		if (p == &tag_wake) {
			start_drain(w);
			continue;
		}
		c = p;
		if (c->closing)
			continue;
		if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_on_readable(c);
		if (!c->closing && (e & EPOLLOUT))
			conn_on_writable(c);
		/* A hang-up or error while reading is paused would be reported again and again:
		 * the peer is gone, so is the connection. A lingering close reads on until the
		 * end of what the peer sent (closing with unread bytes would reset): its reads
		 * end it at that EOF or error. */
		if (!c->closing && !c->lingering && (e & (EPOLLHUP | EPOLLERR)))
			conn_close_later(c);
		sync_interest(w, c);
	}
}

/* Connections whose transport holds input that epoll cannot signal (none with plain
 * sockets; a TLS transport can hold decrypted records) are read again without an event. */
static void
read_pending(struct worker *w)
{
	struct conn *c;

	for (c = w->conns; c != NULL && w->env.npending > 0; c = c->next) {
		if (c->more_pending && !c->closing) {
			conn_on_readable(c);
			sync_interest(w, c);
		}
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int64_t next_tick;
	struct conn *c;
	int n;

	w->env.now_ms = mono_ms();
	next_tick = w->env.now_ms + LOOP_TICK_MS;
	for (;;) {
		int timeout = w->env.npending > 0 ? 0 : (int)(next_tick - w->env.now_ms);

		n = epoll_wait(w->epfd, evs, LOOP_MAX_EVENTS, timeout < 0 ? 0 : timeout);
		if (n < 0) {
			if (errno != EINTR) {
				log_event(w->index, NULL, NULL, NULL, "loop", "epoll_wait: %s",
				    strerror(errno));
				break;
			}
			n = 0;
		}
		w->env.now_ms = mono_ms();
		dispatch(w, evs, n);
		read_pending(w);
		reap(w);
		if (w->env.now_ms >= next_tick) {
			tick(w);
			reap(w);
			next_tick = w->env.now_ms + LOOP_TICK_MS;
		}
		if (w->draining && (w->nconns == 0 || w->env.now_ms >= w->drain_deadline_ms))
			break;
	}
	/* Whatever is left past the grace period is aborted: temporary files removed. */
	while ((c = w->conns) != NULL) {
		conn_log_end(c, "connection", "closed: server stopping%s", conn_busy(c) ?
		    " (grace period over)" : "");
		drop_conn(w, c);
	}
	return NULL;
}

static int
open_listener(struct server *s)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];
	int r, fd = -1, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", (unsigned)s->cfg.port);
	if ((r = getaddrinfo(s->cfg.bind_addr, port, &hints, &res)) != 0) {
		log_server("cannot use bind address %s: %s", s->cfg.bind_addr, gai_strerror(r));
		return SD_ERR_INVALID_ARG;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LOOP_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		log_server("cannot listen on %s:%u: %s", s->cfg.bind_addr, (unsigned)s->cfg.port,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return SD_ERR_IO;
	}
	freeaddrinfo(res);
	/* Inherited by the accepted sockets (set_nodelay); best effort, checked there. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->listen_fd = fd;
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static int
worker_init(struct server *s, struct worker *w, int index)
{
	char why[256], shown_db[256];
	struct epoll_event ev;
	int r;

	w->srv = s;
	w->cfg = &s->cfg;
	w->index = index;
	w->env.cfg = &s->cfg;
	w->env.index = index;
	w->wake_fd = -1;
	if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		log_server("worker %d: %s", index, strerror(errno));
		return SD_ERR_IO;
	}
	if ((w->env.rbuf = malloc(CONN_READ_CHUNK)) == NULL)
		return SD_ERR_ALLOC;
	if ((r = db_open_why(s->cfg.db_path, DB_READ_WRITE, &w->env.db, why,
	    sizeof(why))) != 0) {
		db_describe_target(s->cfg.db_path, shown_db, sizeof(shown_db));
		log_server("cannot open the database %s: %s%s%s", shown_db,
		    sd_strerror(r), why[0] != '\0' ? ": " : "", why);
		return r;
	}
	if ((r = db_set_busy_timeout(w->env.db, LOOP_DB_BUSY_MS)) != 0)
		return r;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_wake;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) != 0)
		return SD_ERR_IO;
	listen_resume(w);
	if (!w->listening) {
		log_server("worker %d: epoll on the listener: %s", index, strerror(errno));
		return SD_ERR_IO;
	}
	return 0;
}

int
server_start(const struct server_config *cfg, struct server **out, uint16_t *port)
{
	struct server *s;
	unsigned i;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SD_ERR_ALLOC;
	s->cfg = *cfg;
	s->listen_fd = -1;
	atomic_init(&s->nconns, 0u);
	s->nworkers = config_workers(cfg);
	if ((s->workers = calloc(s->nworkers, sizeof(*s->workers))) == NULL) {
		free(s);
		return SD_ERR_ALLOC;
	}
	for (i = 0; i < s->nworkers; i++) {
		s->workers[i].epfd = -1;
		s->workers[i].wake_fd = -1;
	}
	if ((r = open_listener(s)) != 0)
		goto fail;
	for (i = 0; i < s->nworkers; i++)
		if ((r = worker_init(s, &s->workers[i], (int)i)) != 0)
			goto fail;
	for (i = 0; i < s->nworkers; i++) {
		if (pthread_create(&s->workers[i].thread, NULL, worker_main,
		    &s->workers[i]) != 0) {
			log_server("cannot start worker %u", i);
			r = SD_ERR_INTERNAL;
			goto fail;
		}
		s->workers[i].started = 1;
	}
	*port = s->port;
	*out = s;
	return 0;
fail:
	server_stop(s);
	server_free(s);
	return r;
}

void
server_stop(struct server *s)
{
	uint64_t one = 1;
	unsigned i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nworkers; i++)
		if (s->workers[i].started && write(s->workers[i].wake_fd, &one, sizeof(one)) < 0)
			log_server("worker %u: cannot wake it: %s", i, strerror(errno));
	for (i = 0; i < s->nworkers; i++) {
		if (s->workers[i].started)
			pthread_join(s->workers[i].thread, NULL);
		s->workers[i].started = 0;
	}
}

void
server_free(struct server *s)
{
	unsigned i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		if (w->epfd >= 0)
			close(w->epfd);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		db_close(w->env.db);
		free(w->env.rbuf);
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	free(s->workers);
	free(s);
}
