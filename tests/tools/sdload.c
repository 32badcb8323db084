/* sdload.c: a version-3 load generator for `make bench` and the load smoke test: one process,
 * many non-blocking connections on one epoll loop, our protocol library for every message, so
 * the client side costs little next to the server it measures.
 *
 * Usage: sdload [-H HOST] -p PORT [-c CONCURRENT] [-k KEYS] [-s SIZE] [-P PACKET] [-t SECONDS]
 *               register|refused|connect|upload N
 *   register: N sessions of 825 -> 1600, 826 -> 1602, each on its own connection.
 *   refused:  N sessions of two 825 with a name the server refuses (a control character in
 *             it) -> 1601 each: the same two requests and replies as a registration, with no
 *             database or RSA work on the server.
 *   connect:  N sessions that connect, shut their side down at once and wait for the server
 *             to close: a TCP connection with no request at all.
 *   upload:   N sessions of 825, 826, the AES key unwrapped, a SIZE-byte file (default 1 MiB;
 *             its first 8 bytes are the session's number, so every file and CRC differs)
 *             encrypted and sent in 828 packets of PACKET ciphertext bytes (default 65536),
 *             the 1603 checked (CRC, ciphertext size, name) against what was sent, 900 -> 1604.
 * At most CONCURRENT connections are open at once (default: all N); KEYS RSA keys (default 4)
 * are made at start and reused, since the server's RSA work is what is measured. -t bounds
 * the whole run (default 300 s). Prints one line:
 *   "MODE sessions=N ok=N crc_ok=N failed=N wall=SECONDS cpu=SECONDS"
 * (cpu: this process's user + system time) and the first failure on stderr; exits 0 only when
 * every session succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../protocol/aes.h"
#include "../../protocol/buf.h"
#include "../../protocol/cksum.h"
#include "../../protocol/codes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "../../protocol/frame.h"
#include "../../protocol/msg.h"
#include "../../protocol/rsa.h"

#define LOAD_KEYS_MAX 64u
#define LOAD_PACKET_MAX (1u << 20)             /* ciphertext bytes per 828 */
#define LOAD_SIZE_MAX (256ull << 20)           /* one file in memory, shared by all sessions */
#define LOAD_SESSIONS_MAX 1000000u
#define LOAD_READ_SIZE 16384u
#define LOAD_EVENTS 256
#define LOAD_SMALL_OUT (REQ_HEADER_SIZE + PAYLOAD_PUBLIC_KEY_SIZE)
#define LOAD_PACKET_HEAD (REQ_HEADER_SIZE + FILE_PACKET_HEADER_SIZE)

enum mode { MODE_REGISTER, MODE_REFUSED, MODE_CONNECT, MODE_UPLOAD };

enum lstate {
	L_CONNECTING,
	L_WAIT_REGISTERED,  /* 825 sent */
	L_WAIT_KEY,         /* 826 sent */
	L_SENDING,          /* 828 packets going out */
	L_WAIT_CRC,         /* last packet sent */
	L_WAIT_ACK,         /* 900 sent */
	L_WAIT_CLOSE,       /* connect mode: our side shut down, waiting for the server's */
	L_DONE,
	L_FAILED,
};

struct key {
	struct rsa_private *priv;
	uint8_t spki[PUBLIC_KEY_SIZE];
};

/* What every connection shares (read-only while the loop runs). */
struct load {
	enum mode mode;
	const char *host, *port;
	struct addrinfo *addr;
	unsigned sessions, concurrent, nkeys;
	uint64_t size;               /* plaintext bytes per upload */
	uint32_t packet;             /* ciphertext bytes per 828 (a multiple of 16) */
	uint32_t content_size;       /* ciphertext bytes per upload */
	uint16_t total_packets;
	double deadline;
	struct key keys[LOAD_KEYS_MAX];
	uint8_t *data;               /* the file; session i's first 8 bytes are i */
	uint8_t *scratch;            /* the first slice with the session's number in it */
	int ep;
	unsigned open, started, finished, ok, crc_ok;
	char first_error[256];
};

/* One session on one connection. It owns its socket, parser and buffers. */
struct lconn {
	struct load *L;
	int fd;
	enum lstate state;
	unsigned index;
	uint32_t events;             /* the epoll interest now set */
	char name[64];               /* client name; the file is "<name>.bin" */
	char file[NAME_FIELD_SIZE];
	uint8_t id[CLIENT_ID_SIZE];
	struct frame_parser parser;
	uint8_t small[LOAD_SMALL_OUT];
	uint8_t *out;                /* bytes being sent: small or packet */
	size_t out_off, out_len;
	uint8_t *packet;             /* LOAD_PACKET_HEAD + packet bytes, while uploading */
	struct aes_cbc *aes;
	struct cksum ck;
	uint64_t plain_off;
	uint16_t packet_no;
	int final_done;
	unsigned refusals;           /* refused mode: 1601 received so far */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(struct lconn *c, const char *fmt, const char *detail, long v)
{
	struct load *L = c->L;

	if (c->state == L_DONE || c->state == L_FAILED)
		return;
	if (L->first_error[0] == '\0')
		snprintf(L->first_error, sizeof(L->first_error), "session %u: %s%s%s (%ld)",
		    c->index, fmt, detail ? ": " : "", detail ? detail : "", v);
	c->state = L_FAILED;
}

/* ---- sending ---- */

/* Sends what is pending until done or the socket is full. */
static void flush(struct lconn *c)
{
	ssize_t w;

	while (c->out_off < c->out_len) {
		w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fail(c, "send", strerror(errno), errno);
			return;
		}
		c->out_off += (size_t)w;
	}
	c->out_off = c->out_len = 0;
}

static int pending(const struct lconn *c)
{
	return c->out_off < c->out_len;
}

/* A small request (825, 826, 900) encoded into c->small and sent. */
static void send_small(struct lconn *c, uint16_t code)
{
	const struct key *k = &c->L->keys[c->index % c->L->nkeys];
	struct buf b;
	int r;

	buf_fixed(&b, c->small, sizeof(c->small));
	if (code == REQ_PUBLIC_KEY)
		r = msg_put_public_key_request(&b, c->id, c->name, k->spki);
	else if (code == REQ_CRC_OK)
		r = msg_put_name_request(&b, c->id, code, c->file);
	else
		r = msg_put_name_request(&b, c->id, code, c->name);
	if (r != 0) {
		fail(c, "encode", sd_strerror(r), code);
		return;
	}
	c->out = c->small;
	c->out_off = 0;
	c->out_len = buf_len(&b);
	flush(c);
}

/* The next 828: the plaintext slice is encrypted straight into the packet after its header.
 * The packet size is a multiple of 16 and nothing is held back while encrypting, so a slice of
 * `packet` plaintext bytes gives exactly `packet` ciphertext bytes; the padding block joins
 * the last slice when it fits, else it is a packet of its own. */
static int build_packet(struct lconn *c)
{
	struct load *L = c->L;
	struct msg_file_packet f;
	struct buf b;
	uint8_t *content = c->packet + LOAD_PACKET_HEAD;
	const uint8_t *src;
	uint64_t left = L->size - c->plain_off;
	size_t n = left < L->packet ? (size_t)left : L->packet, clen = 0, got, i;
	int r;

	if (n > 0) {
		src = L->data + c->plain_off;
		if (c->plain_off == 0) {  /* the session's number in the first 8 bytes (LE) */
			memcpy(L->scratch, src, n);
			for (i = 0; i < 8 && i < n; i++)
				L->scratch[i] = (uint8_t)((uint64_t)c->index >> (8 * i));
			src = L->scratch;
		}
		cksum_update(&c->ck, src, n);
		if ((r = aes_cbc_update(c->aes, src, n, content, &got)) != 0)
			return r;
		clen = got;
		c->plain_off += n;
	}
	if (c->plain_off == L->size && clen + AES_BLOCK_SIZE <= L->packet) {
		if ((r = aes_cbc_final(c->aes, content + clen, &got)) != 0)
			return r;
		clen += got;
		c->final_done = 1;
	}
	memset(&f, 0, sizeof(f));
	f.content_size = L->content_size;
	f.orig_file_size = (uint32_t)L->size;
	f.packet_number = ++c->packet_no;
	f.total_packets = L->total_packets;
	memcpy(f.file_name, c->file, sizeof(f.file_name));
	buf_fixed(&b, c->packet, LOAD_PACKET_HEAD);
	if ((r = msg_put_file_packet_header(&b, c->id, &f, (uint32_t)clen, 0)) != 0)
		return r;
	c->out = c->packet;
	c->out_off = 0;
	c->out_len = LOAD_PACKET_HEAD + clen;
	return 0;
}

/* Keeps the upload going until the socket is full or the last packet is out. */
static void pump(struct lconn *c)
{
	int r;

	while (c->state == L_SENDING) {
		if (pending(c)) {
			flush(c);
			if (pending(c))
				return;
			continue;
		}
		if (c->final_done) {
			c->state = L_WAIT_CRC;
			return;
		}
		if ((r = build_packet(c)) != 0) {
			fail(c, "packet", sd_strerror(r), c->packet_no);
			return;
		}
	}
}

/* ---- receiving ---- */

static void start_upload(struct lconn *c, const struct msg_aes_key *k)
{
	struct load *L = c->L;
	uint8_t key[AES_KEY_SIZE];
	int r;

	if ((r = rsa_oaep_unwrap(L->keys[c->index % L->nkeys].priv, k->wrapped_key, key)) != 0) {
		fail(c, "unwrap", sd_strerror(r), r);
		return;
	}
	r = aes_cbc_new(&c->aes, key, AES_ENCRYPT);
	crypto_wipe(key, sizeof(key));
	if (r != 0) {
		fail(c, "aes", sd_strerror(r), r);
		return;
	}
	if ((c->packet = malloc(LOAD_PACKET_HEAD + L->packet)) == NULL) {
		fail(c, "out of memory", NULL, 0);
		return;
	}
	cksum_init(&c->ck);
	c->state = L_SENDING;
	pump(c);
}

static void on_message(struct lconn *c, const struct frame_event *ev)
{
	struct load *L = c->L;
	uint16_t code = ev->header->code;
	struct msg_aes_key key;
	struct msg_file_crc crc;
	uint8_t id[CLIENT_ID_SIZE];
	int r;

	switch (c->state) {
	case L_WAIT_REGISTERED:
		if (L->mode == MODE_REFUSED) {
			if (code != RESP_REGISTER_FAILED || ev->len != 0)
				break;
			if (++c->refusals == 2)
				c->state = L_DONE;
			else
				send_small(c, REQ_REGISTER);
			return;
		}
		if (code != RESP_REGISTERED ||
		    (r = msg_client_id_decode(ev->data, ev->len, c->id)) != 0)
			break;
		c->state = L_WAIT_KEY;
		send_small(c, REQ_PUBLIC_KEY);
		return;
	case L_WAIT_KEY:
		if (code != RESP_AES_KEY || (r = msg_aes_key_decode(ev->data, ev->len, &key)) != 0)
			break;
		if (L->mode == MODE_REGISTER)
			c->state = L_DONE;
		else
			start_upload(c, &key);
		return;
	case L_WAIT_CRC:
		if (code != RESP_FILE_CRC || (r = msg_file_crc_decode(ev->data, ev->len, &crc)) != 0)
			break;
		if (crc.cksum != cksum_final(&c->ck) || crc.content_size != L->content_size ||
		    strcmp(crc.file_name, c->file) != 0) {
			fail(c, "1603 does not match what was sent", NULL, (long)crc.cksum);
			return;
		}
		L->crc_ok++;
		c->state = L_WAIT_ACK;
		send_small(c, REQ_CRC_OK);
		return;
	case L_WAIT_ACK:
		if (code != RESP_ACK || (r = msg_client_id_decode(ev->data, ev->len, id)) != 0)
			break;
		c->state = L_DONE;
		return;
	default:
		break;
	}
	fail(c, "unexpected reply", msg_code_name(code), code);
}

static void on_readable(struct lconn *c)
{
	static uint8_t in[LOAD_READ_SIZE];
	struct frame_event ev;
	size_t off, used;
	ssize_t got;
	int r;

	for (;;) {
		got = recv(c->fd, in, sizeof(in), 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fail(c, "recv", strerror(errno), errno);
			return;
		}
		if (got == 0 && c->state == L_WAIT_CLOSE) {
			c->state = L_DONE;
			return;
		}
		if (got == 0) {
			fail(c, "the server closed the connection", NULL, c->state);
			return;
		}
		for (off = 0; off < (size_t)got && c->state < L_DONE; off += used) {
			if ((r = frame_feed(&c->parser, in + off, (size_t)got - off, &used, &ev)) != 0) {
				fail(c, "framing", sd_strerror(r), r);
				return;
			}
			if (ev.type == FRAME_MESSAGE)
				on_message(c, &ev);
			else if (ev.type != FRAME_NEED_MORE)
				fail(c, "a streamed response", NULL, ev.type);
		}
		if (c->state >= L_DONE)
			return;
	}
}

/* ---- connections ---- */

static void set_events(struct lconn *c)
{
	struct epoll_event e;
	uint32_t want = EPOLLIN | (c->state == L_CONNECTING || pending(c) ? EPOLLOUT : 0u);

	if (want == c->events)
		return;
	memset(&e, 0, sizeof(e));
	e.events = want;
	e.data.ptr = c;
	if (epoll_ctl(c->L->ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
		fail(c, "epoll_ctl", strerror(errno), errno);
	c->events = want;
}

static void conn_free(struct lconn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	aes_cbc_free(c->aes);
	free(c->packet);
	free(c);
}

static void finish(struct lconn *c)
{
	struct load *L = c->L;

	if (c->state == L_DONE)
		L->ok++;
	L->finished++;
	L->open--;
	conn_free(c);
}

static void start_one(struct load *L)
{
	struct lconn *c;
	struct epoll_event e;
	unsigned index = L->started++;

	L->open++;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		L->finished++;
		L->open--;
		if (L->first_error[0] == '\0')
			snprintf(L->first_error, sizeof(L->first_error), "out of memory");
		return;
	}
	c->L = L;
	c->index = index;
	c->state = L_CONNECTING;
	/* Refused mode: a control character makes the name invalid (SPEC.md 6). */
	snprintf(c->name, sizeof(c->name), "sdload%s %ld %u", L->mode == MODE_REFUSED ? "\x01" :
	    "", (long)getpid(), index);
	snprintf(c->file, sizeof(c->file), "load-%u.bin", index);
	frame_init(&c->parser, FRAME_RESPONSES);
	c->fd = socket(L->addr->ai_family, L->addr->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    L->addr->ai_protocol);
	if (c->fd < 0) {
		fail(c, "socket", strerror(errno), errno);
		finish(c);
		return;
	}
	if (connect(c->fd, L->addr->ai_addr, L->addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
		fail(c, "connect", strerror(errno), errno);
		finish(c);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.events = c->events = EPOLLIN | EPOLLOUT;
	e.data.ptr = c;
	if (epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
		fail(c, "epoll_ctl", strerror(errno), errno);
		finish(c);
	}
}

static void on_event(struct lconn *c, uint32_t events)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (c->state == L_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			fail(c, "connect", strerror(err), err);
			return;
		}
		if (c->L->mode == MODE_CONNECT) {
			if (shutdown(c->fd, SHUT_WR) != 0)
				fail(c, "shutdown", strerror(errno), errno);
			else
				c->state = L_WAIT_CLOSE;
			return;
		}
		c->state = L_WAIT_REGISTERED;
		send_small(c, REQ_REGISTER);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(c);
	if (c->state < L_DONE && (events & EPOLLERR)) {  /* an error with nothing to read */
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		fail(c, "socket error", strerror(err), err);
		return;
	}
	if (c->state < L_DONE && (events & EPOLLOUT)) {
		flush(c);
		pump(c);
	}
}

static int run(struct load *L)
{
	struct epoll_event evs[LOAD_EVENTS];
	struct lconn *c;
	int i, n;

	while (L->finished < L->sessions) {
		while (L->open < L->concurrent && L->started < L->sessions)
			start_one(L);
		if (now() > L->deadline)
			break;
		n = epoll_wait(L->ep, evs, LOAD_EVENTS, 100);
		if (n < 0 && errno != EINTR)
			return -1;
		for (i = 0; i < n; i++) {
			c = evs[i].data.ptr;
			on_event(c, evs[i].events);
			if (c->state >= L_DONE)
				finish(c);
			else
				set_events(c);
		}
	}
	if (L->finished < L->sessions && L->first_error[0] == '\0')
		snprintf(L->first_error, sizeof(L->first_error),
		    "time limit: %u of %u sessions finished", L->finished, L->sessions);
	return 0;
}

/* ---- set-up ---- */

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: sdload [-H HOST] -p PORT [-c CONCURRENT] [-k KEYS] [-s SIZE] "
	    "[-P PACKET] [-t SECONDS] register|refused|connect|upload N\n");
	return 2;
}

static int make_keys(struct load *L)
{
	struct rsa_public *pub = NULL;
	size_t len;
	unsigned i;
	int r = 0;

	for (i = 0; i < L->nkeys && r == 0; i++) {
		if ((r = rsa_generate(&L->keys[i].priv)) != 0 ||
		    (r = rsa_public_from_private(L->keys[i].priv, &pub)) != 0 ||
		    (r = rsa_public_to_spki(pub, L->keys[i].spki, PUBLIC_KEY_SIZE, &len)) != 0)
			break;
		if (len != PUBLIC_KEY_SIZE)
			r = SD_ERR_BAD_SIZE;
		rsa_public_free(pub);
		pub = NULL;
	}
	rsa_public_free(pub);
	return r;
}

int main(int argc, char **argv)
{
	struct load L;
	struct addrinfo hints;
	struct rlimit rl;
	uint64_t v, ct;
	double t0, cpu0;
	unsigned i;
	int opt, r, rc = 1;

	memset(&L, 0, sizeof(L));
	L.host = "127.0.0.1";
	L.nkeys = 4;
	L.size = 1u << 20;
	L.packet = 65536;
	L.ep = -1;
	L.deadline = 300;
	while ((opt = getopt(argc, argv, "H:p:c:k:s:P:t:")) != -1) {
		switch (opt) {
		case 'H': L.host = optarg; break;
		case 'p': L.port = optarg; break;
		case 'c':
			if (parse_u64(optarg, 1, LOAD_SESSIONS_MAX, &v) != 0)
				return usage();
			L.concurrent = (unsigned)v;
			break;
		case 'k':
			if (parse_u64(optarg, 1, LOAD_KEYS_MAX, &v) != 0)
				return usage();
			L.nkeys = (unsigned)v;
			break;
		case 's':
			if (parse_u64(optarg, 0, LOAD_SIZE_MAX, &L.size) != 0)
				return usage();
			break;
		case 'P':
			if (parse_u64(optarg, AES_BLOCK_SIZE, LOAD_PACKET_MAX, &v) != 0 ||
			    v % AES_BLOCK_SIZE != 0)
				return usage();
			L.packet = (uint32_t)v;
			break;
		case 't':
			if (parse_u64(optarg, 1, 86400, &v) != 0)
				return usage();
			L.deadline = (double)v;
			break;
		default:
			return usage();
		}
	}
	if (L.port == NULL || argc - optind != 2 ||
	    parse_u64(argv[optind + 1], 1, LOAD_SESSIONS_MAX, &v) != 0)
		return usage();
	L.sessions = (unsigned)v;
	if (strcmp(argv[optind], "register") == 0)
		L.mode = MODE_REGISTER;
	else if (strcmp(argv[optind], "refused") == 0)
		L.mode = MODE_REFUSED;
	else if (strcmp(argv[optind], "connect") == 0)
		L.mode = MODE_CONNECT;
	else if (strcmp(argv[optind], "upload") == 0)
		L.mode = MODE_UPLOAD;
	else
		return usage();
	if (L.concurrent == 0 || L.concurrent > L.sessions)
		L.concurrent = L.sessions;
	ct = aes_cbc_ciphertext_size(L.size);
	if ((ct + L.packet - 1) / L.packet > UINT16_MAX) {
		fprintf(stderr, "sdload: more than 65535 packets: use a larger -P\n");
		return 2;
	}
	L.content_size = (uint32_t)ct;
	L.total_packets = (uint16_t)((ct + L.packet - 1) / L.packet);

	/* One descriptor per connection: take what the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (crypto_init() != 0) {
		fprintf(stderr, "sdload: crypto_init failed\n");
		return 1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(L.host, L.port, &hints, &L.addr)) != 0) {
		fprintf(stderr, "sdload: %s:%s: %s\n", L.host, L.port, gai_strerror(r));
		return 1;
	}
	/* Refused and connect sessions never send a key. */
	if ((L.mode == MODE_REGISTER || L.mode == MODE_UPLOAD) && (r = make_keys(&L)) != 0) {
		fprintf(stderr, "sdload: RSA keys: %s\n", sd_strerror(r));
		goto out;
	}
	if (L.mode == MODE_UPLOAD) {
		if ((L.data = malloc(L.size + 1)) == NULL ||
		    (L.scratch = malloc(L.packet)) == NULL) {
			fprintf(stderr, "sdload: out of memory\n");
			goto out;
		}
		crypto_random(L.data, (size_t)L.size);
	}
	if ((L.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("sdload: epoll_create1");
		goto out;
	}
	t0 = now();
	cpu0 = cpu_now();
	L.deadline += t0;
	if (run(&L) != 0) {
		perror("sdload: epoll_wait");
		goto out;
	}
	printf("%s sessions=%u ok=%u crc_ok=%u failed=%u wall=%.6f cpu=%.6f\n",
	    argv[optind], L.sessions, L.ok, L.crc_ok,
	    L.sessions - L.ok, now() - t0, cpu_now() - cpu0);
	if (L.first_error[0] != '\0')
		fprintf(stderr, "sdload: first failure: %s\n", L.first_error);
	rc = L.ok == L.sessions ? 0 : 1;
out:
	if (L.ep >= 0)
		close(L.ep);
	for (i = 0; i < L.nkeys; i++)
		rsa_private_free(L.keys[i].priv);
	free(L.data);
	free(L.scratch);
	freeaddrinfo(L.addr);
	return rc;
}
