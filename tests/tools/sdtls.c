/* sdtls.c: a small command-line front end to protocol/tls.h, so that the Python test
 * (tests/integration/test_tls_python.py) can check identities, fingerprints and handshakes
 * against python3-cryptography and Python's ssl module, and so that the memory of an idle
 * TLS session and the handshake rate can be measured (`sdtls bench N`). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../protocol/buf.h"
#include "../../protocol/err.h"
#include "../../protocol/tls.h"

#define WAIT_MS 20000

static void usage(void)
{
	fprintf(stderr,
	    "usage: sdtls gen CN ME_KEY KEY_PEM CERT_PEM   (prints the fingerprint)\n"
	    "       sdtls fp ME_KEY                       (one PEM blob: key then certificate)\n"
	    "       sdtls fp2 KEY_PEM CERT_PEM\n"
	    "       sdtls fp-der CERT_DER\n"
	    "       sdtls serve ME_KEY    (one connection on 127.0.0.1: prints the port, then the\n"
	    "                             peer fingerprint and description; echoes one line back)\n"
	    "       sdtls bench N [data]  (N idle server sessions: memory; handshake rate;\n"
	    "                             data: after one small message each way)\n");
}

static int read_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	uint8_t chunk[4096];
	size_t n;
	int r = 0;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	buf_init(out, TLS_PEM_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_put_bytes(out, chunk, n) != 0) {
			r = -1;
			break;
		}
	fclose(f);
	return r;
}

static int write_file(const char *path, const struct buf *b)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	ok = fwrite(buf_ptr(b), 1, buf_len(b), f) == buf_len(b);
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int load(const char *path, struct tls_identity **id)
{
	struct buf b;
	int r;

	if (read_file(path, &b) != 0)
		return -1;
	r = tls_identity_from_pem(buf_ptr(&b), buf_len(&b), id);
	buf_free(&b);
	if (r != 0)
		fprintf(stderr, "%s: %s\n", path, sd_strerror(r));
	return r;
}

static int cmd_gen(char **av)
{
	struct tls_identity *id = NULL;
	struct buf both, key, crt;
	char fp[TLS_FP_TEXT_SIZE];
	int r;

	buf_init(&both, TLS_PEM_MAX);
	buf_init(&key, TLS_PEM_MAX);
	buf_init(&crt, TLS_PEM_MAX);
	if ((r = tls_identity_generate(av[0], &id)) != 0 ||
	    (r = tls_identity_to_pem(id, &both)) != 0 ||
	    (r = tls_identity_key_pem(id, &key)) != 0 ||
	    (r = tls_identity_cert_pem(id, &crt)) != 0 ||
	    (r = tls_identity_fingerprint(id, fp)) != 0) {
		fprintf(stderr, "gen: %s\n", sd_strerror(r));
		r = -1;
	} else if (write_file(av[1], &both) != 0 || write_file(av[2], &key) != 0 ||
	    write_file(av[3], &crt) != 0) {
		r = -1;
	} else {
		printf("%s\n", fp);
	}
	buf_free(&both);
	buf_free(&key);
	buf_free(&crt);
	tls_identity_free(id);
	return r;
}

static int cmd_fp2(char **av)
{
	struct tls_identity *id = NULL;
	struct buf k, c;
	char fp[TLS_FP_TEXT_SIZE];
	int r = -1;

	if (read_file(av[0], &k) != 0)
		return -1;
	if (read_file(av[1], &c) == 0) {
		r = tls_identity_from_pems(buf_ptr(&k), buf_len(&k), buf_ptr(&c), buf_len(&c), &id);
		if (r == 0)
			r = tls_identity_fingerprint(id, fp);
		if (r == 0)
			printf("%s\n", fp);
		else
			fprintf(stderr, "fp2: %s\n", sd_strerror(r));
		buf_free(&c);
	}
	buf_free(&k);
	tls_identity_free(id);
	return r;
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits until fd is ready the way r asks. */
static int wait_fd(int fd, int r, long deadline)
{
	struct pollfd p = { fd, (short)(r == SD_ERR_WANT_WRITE ? POLLOUT : POLLIN), 0 };
	long left = deadline - now_ms();

	return left > 0 && poll(&p, 1, (int)left) > 0 ? 0 : -1;
}

/* A non-blocking server session's handshake, driven by poll. */
static int serve_handshake(struct tls_session *s, int fd, long deadline)
{
	int r;

	while ((r = tls_handshake(s)) == SD_ERR_WANT_READ || r == SD_ERR_WANT_WRITE)
		if (wait_fd(fd, r, deadline) != 0)
			return SD_ERR_INTERNAL;
	return r;
}

static int cmd_serve(char **av)
{
	struct tls_identity *id = NULL;
	struct tls_creds *creds = NULL;
	struct tls_session *s = NULL;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char line[1024], desc[128];
	size_t got = 0, n, off;
	long deadline;
	int lfd = -1, fd = -1, r = -1;

	if (load(av[0], &id) != 0 || tls_creds_new(id, &creds) != 0)
		goto out;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
		goto out;
	printf("%u\n", ntohs(a.sin_port));
	fflush(stdout);
	if ((fd = accept(lfd, NULL, NULL)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
		goto out;
	deadline = now_ms() + WAIT_MS;
	if (tls_server_new(creds, fd, &s) != 0)
		goto out;
	r = serve_handshake(s, fd, deadline);
	printf("handshake %s\npeer %s\n", r == 0 ? "ok" : sd_strerror(r), tls_peer_fingerprint(s));
	fflush(stdout);
	if (r != 0)
		goto out;
	tls_describe(s, desc, sizeof(desc));
	printf("desc %s\n", desc);
	fflush(stdout);
	r = -1;
	/* One line in, the same line back. */
	while (got == 0 || line[got - 1] != '\n') {
		int e = tls_read(s, line + got, sizeof(line) - got, &n);

		if (e == SD_ERR_WANT_READ || e == SD_ERR_WANT_WRITE) {
			if (wait_fd(fd, e, deadline) != 0)
				goto out;
			continue;
		}
		if (e != 0 || (got += n) == sizeof(line))
			goto out;
	}
	for (off = 0; off < got;) {
		int e = tls_write(s, line + off, got - off, &n);

		if (e == SD_ERR_WANT_READ || e == SD_ERR_WANT_WRITE) {
			if (wait_fd(fd, e, deadline) != 0)
				goto out;
			continue;
		}
		if (e != 0)
			goto out;
		off += n;
	}
	while (tls_bye(s) == SD_ERR_WANT_WRITE)
		if (wait_fd(fd, SD_ERR_WANT_WRITE, deadline) != 0)
			break;
	r = 0;
out:
	tls_session_free(s);
	tls_creds_free(creds);
	tls_identity_free(id);
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	return r;
}

/* --- bench: N handshakes, the server's sessions kept idle afterwards ----------------- */

struct bench_client {
	const struct tls_creds *creds;
	int *fds;
	int n;
	int data;  /* 1: one small message each way after the handshake */
	int failures;
};

#define BENCH_MSG "sixteen bytes..\n"
#define BENCH_MSG_LEN 16u

static void *bench_client_thread(void *arg)
{
	struct bench_client *c = arg;
	struct tls_session *s;
	int i;

	for (i = 0; i < c->n; i++) {
		s = NULL;
		if (tls_client_new(c->creds, c->fds[i], NULL, &s) != 0 || tls_handshake(s) != 0) {
			c->failures++;
		} else if (c->data) {
			char back[BENCH_MSG_LEN];
			size_t n, got = 0;

			if (tls_write(s, BENCH_MSG, BENCH_MSG_LEN, &n) != 0 || n != BENCH_MSG_LEN)
				c->failures++;
			while (got < BENCH_MSG_LEN && tls_read(s, back + got, BENCH_MSG_LEN - got,
			    &n) == 0)
				got += n;
			if (got != BENCH_MSG_LEN)
				c->failures++;
		}
		/* The client side is freed at once; its fd stays open, so the server's session
		 * stays idle and alive. */
		tls_session_free(s);
	}
	return NULL;
}

static double thread_cpu_s(void)
{
	struct rusage u;

	getrusage(RUSAGE_THREAD, &u);
	return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
	    (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static int cmd_bench(char **av, int data)
{
	struct tls_identity *sid = NULL, *cid = NULL;
	struct tls_creds *screds = NULL, *ccreds = NULL;
	struct tls_session **ss = NULL;
	struct bench_client bc;
	struct mallinfo2 m0, m1;
	int n = atoi(av[0]), i, *sfd = NULL, *cfd = NULL, r = -1, failures = 0;
	long t0, t1, deadline;
	double cpu0, cpu1;
	pthread_t t;

	if (n <= 0 || n > 100000)
		return -1;
	if (tls_identity_generate("server", &sid) != 0 || tls_identity_generate("client", &cid) != 0 ||
	    tls_creds_new(sid, &screds) != 0 || tls_creds_new(cid, &ccreds) != 0)
		goto out;
	ss = calloc((size_t)n, sizeof(*ss));
	sfd = calloc((size_t)n, sizeof(int));
	cfd = calloc((size_t)n, sizeof(int));
	if (ss == NULL || sfd == NULL || cfd == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		int sp[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0) {
			perror("socketpair");
			n = i;
			break;
		}
		fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
		sfd[i] = sp[0];
		cfd[i] = sp[1];
	}
	bc.creds = ccreds;
	bc.fds = cfd;
	bc.n = n;
	bc.data = data;
	bc.failures = 0;
	/* The server's sessions are made in this thread: mallinfo2() counts the main arena, so
	 * the client thread's allocations (its own arena) stay out of the figure. */
	m0 = mallinfo2();
	cpu0 = thread_cpu_s();
	t0 = now_ms();
	if (pthread_create(&t, NULL, bench_client_thread, &bc) != 0)
		goto out;
	deadline = now_ms() + 600000;
	for (i = 0; i < n; i++) {
		if (tls_server_new(screds, sfd[i], &ss[i]) != 0 ||
		    serve_handshake(ss[i], sfd[i], deadline) != 0) {
			failures++;
		} else if (bc.data) {
			char msg[BENCH_MSG_LEN];
			size_t got = 0, k;
			int e;

			while (got < BENCH_MSG_LEN) {
				e = tls_read(ss[i], msg + got, BENCH_MSG_LEN - got, &k);
				if (e == 0)
					got += k;
				else if (e != SD_ERR_WANT_READ || wait_fd(sfd[i], e, deadline) != 0)
					break;
			}
			if (got != BENCH_MSG_LEN || tls_write(ss[i], msg, got, &k) != 0 || k != got)
				failures++;
		}
	}
	pthread_join(t, NULL);
	t1 = now_ms();
	cpu1 = thread_cpu_s();
	m1 = mallinfo2();
	printf("sessions %d%s failures %d/%d\n", n, data ? " (after one message each way)" : "",
	    failures, bc.failures);
	printf("idle_server_session_bytes %.0f\n", ((double)m1.uordblks - (double)m0.uordblks) / n);
	printf("handshakes_per_s_wall %.0f (both ends in this process)\n",
	    n * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1));
	printf("server_cpu_per_handshake_ms %.3f => handshakes_per_s_per_server_core %.0f\n",
	    (cpu1 - cpu0) * 1000.0 / n, n / (cpu1 - cpu0 > 0 ? cpu1 - cpu0 : 1e-9));
	r = failures == 0 && bc.failures == 0 ? 0 : -1;
out:
	for (i = 0; ss != NULL && i < n; i++)
		tls_session_free(ss[i]);
	for (i = 0; sfd != NULL && cfd != NULL && i < n; i++) {
		close(sfd[i]);
		close(cfd[i]);
	}
	free(ss);
	free(sfd);
	free(cfd);
	tls_creds_free(screds);
	tls_creds_free(ccreds);
	tls_identity_free(sid);
	tls_identity_free(cid);
	return r;
}

int main(int argc, char **argv)
{
	int r = -1;

	if (argc == 6 && strcmp(argv[1], "gen") == 0) {
		r = cmd_gen(argv + 2);
	} else if (argc == 3 && strcmp(argv[1], "fp") == 0) {
		struct tls_identity *id = NULL;
		char fp[TLS_FP_TEXT_SIZE];

		if (load(argv[2], &id) == 0 && tls_identity_fingerprint(id, fp) == 0) {
			printf("%s\n", fp);
			r = 0;
		}
		tls_identity_free(id);
	} else if (argc == 4 && strcmp(argv[1], "fp2") == 0) {
		r = cmd_fp2(argv + 2);
	} else if (argc == 3 && strcmp(argv[1], "fp-der") == 0) {
		struct buf b;
		char fp[TLS_FP_TEXT_SIZE];

		if (read_file(argv[2], &b) == 0) {
			r = tls_fingerprint_of_cert_der(buf_ptr(&b), buf_len(&b), fp);
			if (r == 0)
				printf("%s\n", fp);
			else
				fprintf(stderr, "fp-der: %s\n", sd_strerror(r));
			buf_free(&b);
		}
	} else if (argc == 3 && strcmp(argv[1], "serve") == 0) {
		r = cmd_serve(argv + 2);
	} else if ((argc == 3 || (argc == 4 && strcmp(argv[3], "data") == 0)) &&
	    strcmp(argv[1], "bench") == 0) {
		r = cmd_bench(argv + 2, argc == 4);
	} else {
		usage();
		return 2;
	}
	return r == 0 ? 0 : 1;
}
