/* main.c: sealdrop-server: options, start-up (port.info, storage folder, stale temporary
 * files, database, descriptor limit), the signal wait and the graceful stop. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "../db/db.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/tls.h"
#include "commit.h"
#include "config.h"
#include "crash.h"
#include "identity.h"
#include "log.h"
#include "loop.h"
#include "put.h"
#include "storage.h"

#ifndef SEALDROP_VERSION
#define SEALDROP_VERSION "0.0.0"
#endif

enum {
	OPT_BIND = 256, OPT_DB, OPT_STORAGE, OPT_WORKERS, OPT_MAX_CONN, OPT_IDLE, OPT_MAX_FILE,
	OPT_GRACE, OPT_CORRUPT, OPT_PENDING_TTL, OPT_RESUME_TTL, OPT_TLS_KEY, OPT_TLS_CERT, OPT_FINGERPRINT,
	OPT_NO_V4,
	OPT_MAX_STORAGE, OPT_MAX_FILES, OPT_MAX_UPLOADS, OPT_MAX_REG,
	OPT_MIN_RATE, OPT_MIN_RATE_GRACE, OPT_RETRY_REPLY,
};

/* What main() does after the options: serve, or print the fingerprint. */
enum run_mode { RUN_SERVE, RUN_FINGERPRINT };

/* Longer than 60 lines on purpose: it is the help text, one line per option. */
static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: sealdrop-server [options]\n"
	    "Serves the version-3 file-upload protocol (register, RSA-wrapped AES key,\n"
	    "encrypted upload, cksum confirmation) and, on the same port, version 4 (TLS 1.3\n"
	    "with pinned keys). Runs in the foreground and logs one line per event to\n"
	    "stderr. Stop it with SIGINT or SIGTERM.\n"
	    "\n"
	    "Options:\n"
	    "  -p, --port N             TCP port (default: port.info in the working folder,\n"
	    "                           or %u if that is missing or invalid; 0 = any free\n"
	    "                           port, the log line \"listening on\" shows it)\n"
	    "      --bind ADDR          address to listen on (default %s)\n"
	    "      --db PATH|URL        SQLite database file (default %s), or\n"
	    "                           PostgreSQL: a URL (postgresql://user@host/db) or\n"
	    "                           a libpq keyword string, for several servers that\n"
	    "                           share one database and one --storage folder\n"
	    "      --storage DIR        folder of the uploaded files (default %s/)\n"
	    "      --workers N          worker threads (default: one per core)\n"
	    "      --max-connections N  open connections at most (default %u)\n"
	    "      --idle-timeout SECS  close a connection that sent nothing for SECS\n"
	    "                           seconds (default %u)\n"
	    "      --max-file-size N    largest file accepted, in bytes (default %llu;\n"
	    "                           version 4: 2^63 - 1)\n"
	    "      --resume-ttl SECS    a partial version-4 upload is kept this long\n"
	    "                           (default %u)\n"
	    "      --grace SECS         on SIGINT/SIGTERM, time given to uploads in flight\n"
	    "                           (default %u)\n"
	    "      --pending-ttl SECS   a registration that got no key within SECS seconds\n"
	    "                           is removed, freeing its name (default %u)\n"
	    "      --tls-key PATH       version 4: the server's Ed25519 key (default\n"
	    "                           server.key beside the database; made on first start)\n"
	    "      --tls-cert PATH      version 4: its certificate (default server.crt beside\n"
	    "                           the database; made with the key)\n"
	    "      --fingerprint        print the server's key fingerprint (SHA256:...) for\n"
	    "                           clients to pin, and exit (makes the key if missing)\n"
	    "      --no-v4              serve version 3 only (no TLS)\n"
	    "      --max-client-storage BYTES  bytes one client may store (default %llu;\n"
	    "                           0: no limit)\n"
	    "      --max-client-files N files one client may store (default %u; 0: no limit)\n"
	    "      --max-uploads-per-client N  uploads in progress under one client ID\n"
	    "                           (default %u; 0: no limit)\n"
	    "      --max-registrations-per-minute N  825/827 (version 4: REGISTER, LINK)\n"
	    "                           requests per source address and minute (default %u;\n"
	    "                           0: no limit); beyond it the connection gets 1607\n"
	    "                           (version 4: ERROR 8) and is closed\n"
	    "      --min-upload-rate BYTES  an upload must average this many bytes per second\n"
	    "                           once it is --min-rate-grace seconds old (default %u;\n"
	    "                           0: no minimum)\n"
	    "      --min-rate-grace SECS  (default %u)\n"
	    "      --retry-reply-after MS  a 901 followed by nothing for MS milliseconds is\n"
	    "                           answered 1604, for clients that wait for a reply\n"
	    "                           before they resend (default %u; 0: never)\n"
	    "      --test-corrupt-crc N TEST ONLY: the first N 1603 replies of each\n"
	    "                           connection carry a wrong CRC, to show a client's\n"
	    "                           retry loop. Never use it in production.\n"
	    "  -h, --help               this text\n"
	    "  -V, --version            the version\n",
	    CONFIG_DEFAULT_PORT, CONFIG_DEFAULT_BIND, CONFIG_DEFAULT_DB, CONFIG_DEFAULT_STORAGE,
	    CONFIG_DEFAULT_MAX_CONNECTIONS, CONFIG_DEFAULT_IDLE_TIMEOUT,
	    (unsigned long long)CONFIG_DEFAULT_MAX_FILE_SIZE, CONFIG_DEFAULT_RESUME_TTL,
	    CONFIG_DEFAULT_GRACE, CONFIG_DEFAULT_PENDING_TTL,
	    (unsigned long long)CONFIG_DEFAULT_MAX_CLIENT_STORAGE, CONFIG_DEFAULT_MAX_CLIENT_FILES,
	    CONFIG_DEFAULT_MAX_UPLOADS_PER_CLIENT, CONFIG_DEFAULT_MAX_REGISTRATIONS,
	    CONFIG_DEFAULT_MIN_UPLOAD_RATE, CONFIG_DEFAULT_MIN_RATE_GRACE,
	    CONFIG_DEFAULT_RETRY_REPLY_AFTER);
}

static int
number(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	if (config_parse_u64(arg, min, max, out) != 0) {
		fprintf(stderr, "sealdrop-server: %s needs a number from %llu to %llu, not '%s'\n",
		    opt, (unsigned long long)min, (unsigned long long)max, arg);
		return -1;
	}
	return 0;
}

/* 0: run; 1: exit 0 (help, version); -1: exit 2 (bad usage).
 * Longer than 60 lines on purpose: one short case per option, read as the option table. */
static int
parse_options(int argc, char **argv, struct server_config *cfg, int *port_given,
    enum run_mode *mode)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "db", required_argument, NULL, OPT_DB },
		{ "storage", required_argument, NULL, OPT_STORAGE },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "max-file-size", required_argument, NULL, OPT_MAX_FILE },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "test-corrupt-crc", required_argument, NULL, OPT_CORRUPT },
		{ "pending-ttl", required_argument, NULL, OPT_PENDING_TTL },
		{ "resume-ttl", required_argument, NULL, OPT_RESUME_TTL },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "fingerprint", no_argument, NULL, OPT_FINGERPRINT },
		{ "no-v4", no_argument, NULL, OPT_NO_V4 },
		{ "max-client-storage", required_argument, NULL, OPT_MAX_STORAGE },
		{ "max-client-files", required_argument, NULL, OPT_MAX_FILES },
		{ "max-uploads-per-client", required_argument, NULL, OPT_MAX_UPLOADS },
		{ "max-registrations-per-minute", required_argument, NULL, OPT_MAX_REG },
		{ "min-upload-rate", required_argument, NULL, OPT_MIN_RATE },
		{ "min-rate-grace", required_argument, NULL, OPT_MIN_RATE_GRACE },
		{ "retry-reply-after", required_argument, NULL, OPT_RETRY_REPLY },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int ch;

	*port_given = 0;
	*mode = RUN_SERVE;
	while ((ch = getopt_long(argc, argv, "p:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (number("--port", optarg, 0, 65535, &v) != 0)
				return -1;
			cfg->port = (uint16_t)v;
			*port_given = 1;
			break;
		case OPT_BIND:
			cfg->bind_addr = optarg;
			break;
		case OPT_DB:
			cfg->db_path = optarg;
			break;
		case OPT_STORAGE:
			cfg->storage_dir = optarg;
			break;
		case OPT_WORKERS:
			if (number("--workers", optarg, 1, CONFIG_MAX_WORKERS, &v) != 0)
				return -1;
			cfg->workers = (unsigned)v;
			break;
		case OPT_MAX_CONN:
			if (number("--max-connections", optarg, 1, 1000000, &v) != 0)
				return -1;
			cfg->max_connections = (unsigned)v;
			break;
		case OPT_IDLE:
			if (number("--idle-timeout", optarg, 1, 86400, &v) != 0)
				return -1;
			cfg->idle_timeout = (unsigned)v;
			break;
		case OPT_MAX_FILE:
			if (number("--max-file-size", optarg, 0, CONFIG_DEFAULT_MAX_FILE_SIZE_V4,
			    &v) != 0)
				return -1;
			cfg->max_file_size = v < CONFIG_DEFAULT_MAX_FILE_SIZE ? v :
			    CONFIG_DEFAULT_MAX_FILE_SIZE;
			cfg->max_file_size_v4 = v;
			break;
		case OPT_GRACE:
			if (number("--grace", optarg, 0, 3600, &v) != 0)
				return -1;
			cfg->grace = (unsigned)v;
			break;
		case OPT_CORRUPT:
			if (number("--test-corrupt-crc", optarg, 0, 1000, &v) != 0)
				return -1;
			cfg->test_corrupt_crc = (unsigned)v;
			break;
		case OPT_PENDING_TTL:
			if (number("--pending-ttl", optarg, 1, 30u * 86400u, &v) != 0)
				return -1;
			cfg->pending_ttl = (unsigned)v;
			break;
		case OPT_RESUME_TTL:
			if (number("--resume-ttl", optarg, 1, 365u * 86400u, &v) != 0)
				return -1;
			cfg->resume_ttl = (unsigned)v;
			break;
		case OPT_TLS_KEY:
			cfg->tls_key_path = optarg;
			break;
		case OPT_TLS_CERT:
			cfg->tls_cert_path = optarg;
			break;
		case OPT_FINGERPRINT:
			*mode = RUN_FINGERPRINT;
			break;
		case OPT_NO_V4:
			cfg->no_v4 = 1;
			break;
		case OPT_MAX_STORAGE:
			if (number("--max-client-storage", optarg, 0, UINT64_MAX / 2, &v) != 0)
				return -1;
			cfg->max_client_storage = v;
			break;
		case OPT_MAX_FILES:
			if (number("--max-client-files", optarg, 0, 100000000, &v) != 0)
				return -1;
			cfg->max_client_files = v;
			break;
		case OPT_MAX_UPLOADS:
			if (number("--max-uploads-per-client", optarg, 0, 1000000, &v) != 0)
				return -1;
			cfg->max_uploads_per_client = (unsigned)v;
			break;
		case OPT_MAX_REG:
			if (number("--max-registrations-per-minute", optarg, 0, 1000000, &v) != 0)
				return -1;
			cfg->max_registrations = (unsigned)v;
			break;
		case OPT_MIN_RATE:
			if (number("--min-upload-rate", optarg, 0, 1u << 30, &v) != 0)
				return -1;
			cfg->min_upload_rate = (unsigned)v;
			break;
		case OPT_MIN_RATE_GRACE:
			if (number("--min-rate-grace", optarg, 0, 86400, &v) != 0)
				return -1;
			cfg->min_rate_grace = (unsigned)v;
			break;
		case OPT_RETRY_REPLY:
			if (number("--retry-reply-after", optarg, 0, 600000, &v) != 0)
				return -1;
			cfg->retry_reply_after_ms = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("sealdrop-server %s\n", SEALDROP_VERSION);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sealdrop-server: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* Thousands of connections need thousands of descriptors: take what the hard limit allows. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_server("warning: cannot raise the descriptor limit: %s", strerror(errno));
}

/* How long a server waits for another's start-up work on a shared storage folder. */
#define STARTUP_LOCK_WAIT_S 300u

/* Start-up work on the database: every commit intent rolled forward (before the temporary
 * files they name are removed as stale), expired pending registrations removed. 0 or -1
 * (logged). */
static int
recover_db(const struct server_config *cfg, struct db *db)
{
	long rolled, dropped, expired = 0;
	int r;

	if ((r = commit_recover(db, cfg->storage_dir, &rolled, &dropped)) != 0) {
		log_server("fatal: cannot roll the interrupted commits forward: %s (%s)",
		    sd_strerror(r), db_errmsg(db));
		return -1;
	}
	if (rolled > 0 || dropped > 0)
		log_server("interrupted commits: %ld rolled forward, %ld dropped", rolled, dropped);
	if ((r = db_client_expire_pending(db, (int64_t)cfg->pending_ttl, &expired)) != 0)
		log_server("warning: cannot remove expired pending registrations: %s (%s)",
		    sd_strerror(r), db_errmsg(db));
	else if (expired > 0)
		log_server("removed %ld pending registration%s older than %u s", expired,
		    expired == 1 ? "" : "s", cfg->pending_ttl);
	return 0;
}

/* Version 4's partial uploads made true again after a crash (put.h), the expired ones gone.
 * 0 or -1 (logged). */
static int
reconcile_uploads(const struct server_config *cfg, struct db *db)
{
	long kept = 0, dropped = 0, expired = 0;
	int r;

	if ((r = put_reconcile(db, cfg->storage_dir, &kept, &dropped)) != 0) {
		log_server("fatal: cannot check the partial uploads: %s (%s)", sd_strerror(r),
		    db_errmsg(db));
		return -1;
	}
	if ((r = put_expire(db, cfg->storage_dir, (int64_t)time(NULL), &expired)) != 0)
		log_server("warning: cannot delete expired partial uploads: %s", sd_strerror(r));
	if (kept > 0 || dropped > 0 || expired > 0)
		log_server("partial uploads: %ld kept, %ld dropped, %ld expired", kept, dropped,
		    expired);
	return 0;
}

/* The storage folder exists, the database is created or checked once before the workers open
 * their connections, interrupted commits are rolled forward, and then no partial file of an
 * earlier run is left. 0 or -1 (logged). */
static int
prepare_storage_and_db(const struct server_config *cfg)
{
	struct db *db = NULL;
	char why[256], shown_db[256];
	int r, stale, lock_fd = -1, waited = 0;

	if (mkdir(cfg->storage_dir, 0700) != 0 && errno != EEXIST) {
		log_server("fatal: cannot create the storage folder %s: %s", cfg->storage_dir,
		    strerror(errno));
		return -1;
	}
	if ((r = db_open_why(cfg->db_path, DB_READ_WRITE, &db, why, sizeof(why))) != 0) {
		db_describe_target(cfg->db_path, shown_db, sizeof(shown_db));
		log_server("fatal: cannot open the database %s: %s%s%s", shown_db,
		    sd_strerror(r), why[0] != '\0' ? ": " : "", why);
		return -1;
	}
	/* Servers sharing the folder do this one at a time (storage.h); what a live server is
	 * doing is left alone by the steps themselves (its files are locked). */
	if ((r = storage_startup_lock(cfg->storage_dir, STARTUP_LOCK_WAIT_S, &lock_fd,
	    &waited)) != 0) {
		log_server("fatal: cannot take the start-up lock %s/%s: %s", cfg->storage_dir,
		    STORAGE_STARTUP_LOCK, r == SD_ERR_TOO_LARGE ? "another server held it for "
		    "too long" : strerror(errno));
		db_close(db);
		return -1;
	}
	if (waited)
		log_server("waited for another server's start-up on the same storage folder");
	r = recover_db(cfg, db);
	if (r == 0)
		r = reconcile_uploads(cfg, db);
	db_close(db);
	if (r == 0 && (stale = storage_remove_stale(cfg->storage_dir)) < 0) {
		log_server("fatal: cannot clean the storage folder %s: %s", cfg->storage_dir,
		    sd_strerror(stale));
		r = -1;
	} else if (r == 0 && stale > 0)
		log_server("removed %d partial file%s left by an earlier run", stale,
		    stale == 1 ? "" : "s");
	(void)close(lock_fd);
	return r != 0 ? -1 : 0;
}

/* The server's identity (identity.h) at the configured paths, or beside the database; NULL
 * after logging why (why starts with "fatal"). The fingerprint goes to fp. */
static struct tls_identity *
server_identity(const struct server_config *cfg, char fp[TLS_FP_TEXT_SIZE])
{
	char key_path[IDENTITY_PATH_MAX], cert_path[IDENTITY_PATH_MAX], why[IDENTITY_PATH_MAX];
	char storage[IDENTITY_PATH_MAX];
	const char *beside = cfg->db_path;
	struct tls_identity *id = NULL;
	int r, created, loose;
	size_t n;

	/* A PostgreSQL database has no folder: several servers share the storage folder, so the
	 * key they share goes beside it (docs/deployment.md). */
	if (db_is_postgres(cfg->db_path)) {
		snprintf(storage, sizeof(storage), "%s", cfg->storage_dir);
		for (n = strlen(storage); n > 1 && storage[n - 1] == '/'; n--)
			storage[n - 1] = '\0';
		beside = storage;
	}
	if (cfg->tls_key_path != NULL)
		snprintf(key_path, sizeof(key_path), "%s", cfg->tls_key_path);
	else if (identity_path_beside(beside, IDENTITY_KEY_FILE, key_path,
	    sizeof(key_path)) != 0)
		key_path[0] = '\0';
	if (cfg->tls_cert_path != NULL)
		snprintf(cert_path, sizeof(cert_path), "%s", cfg->tls_cert_path);
	else if (identity_path_beside(beside, IDENTITY_CERT_FILE, cert_path,
	    sizeof(cert_path)) != 0)
		cert_path[0] = '\0';
	if (key_path[0] == '\0' || cert_path[0] == '\0') {
		log_server("fatal: the database path is too long to put the TLS key beside it");
		return NULL;
	}
	r = identity_load_or_create(key_path, cert_path, &id, &created, &loose, why,
	    sizeof(why));
	if (r == 0)
		r = tls_identity_fingerprint(id, fp);
	if (r != 0) {
		log_server("fatal: the server's TLS identity: %s", why[0] != '\0' ? why :
		    sd_strerror(r));
		tls_identity_free(id);
		return NULL;
	}
	if (created)
		log_server("made a new TLS identity: %s, %s", key_path, cert_path);
	if (loose)
		log_server("warning: %s can be read by other users (chmod 600 it)", key_path);
	return id;
}

/* The port from port.info when --port was not given, and the warnings of the test-only
 * switches, so that a server started with one of them says so. */
static void
settle_port_and_warn(struct server_config *cfg, int port_given)
{
	const char *armed;
	int r;

	if (!port_given) {
		r = config_read_port_file(CONFIG_PORT_FILE, &cfg->port);
		if (r == SD_ERR_NOT_FOUND)
			log_server("warning: %s not found; using port %u", CONFIG_PORT_FILE,
			    CONFIG_DEFAULT_PORT);
		else if (r != 0)
			log_server("warning: %s does not hold a valid port; using port %u",
			    CONFIG_PORT_FILE, CONFIG_DEFAULT_PORT);
	}
	if ((armed = crash_init()) != NULL)
		log_server("warning: SEALDROP_CRASH_AT: the server exits at step %s (test only)",
		    armed);
	if ((armed = crash_fail_init()) != NULL)
		log_server("warning: SEALDROP_FAIL_AT: step %s fails once (test only)", armed);
	if (cfg->test_corrupt_crc > 0)
		log_server("warning: --test-corrupt-crc %u: the first %u CRC replies of each "
		    "connection are wrong on purpose (test only)", cfg->test_corrupt_crc,
		    cfg->test_corrupt_crc);
}

/* Version 4: one set of credentials, read-only, shared by every worker and connection,
 * from the identity files (made on first start); fp gets the fingerprint. 0 or -1 (logged). */
static int
make_tls_creds(const struct server_config *cfg, char fp[TLS_FP_TEXT_SIZE],
    struct tls_creds **out)
{
	struct tls_identity *id;
	int r;

	*out = NULL;
	if ((id = server_identity(cfg, fp)) == NULL)
		return -1;
	r = tls_creds_new(id, out);
	tls_identity_free(id);
	if (r != 0) {
		log_server("fatal: TLS credentials: %s", sd_strerror(r));
		return -1;
	}
	return 0;
}

/* The start-up lines: what serves, from where (the database without its password). */
static void
log_started(const struct server_config *cfg, const char *fp, uint16_t port)
{
	char shown_db[256];

	db_describe_target(cfg->db_path, shown_db, sizeof(shown_db));
	log_server("sealdrop-server %s: database %s, storage %s/, %u workers",
	    SEALDROP_VERSION, shown_db, cfg->storage_dir, config_workers(cfg));
	if (fp != NULL)
		log_server("version 4 (TLS 1.3) on the same port; server key fingerprint %s", fp);
	else
		log_server("version 3 only (--no-v4)");
	log_server("listening on %s:%u", cfg->bind_addr, (unsigned)port);
}

int
main(int argc, char **argv)
{
	struct server_config cfg;
	struct server *srv = NULL;
	struct tls_identity *id = NULL;
	struct tls_creds *creds = NULL;
	char fp[TLS_FP_TEXT_SIZE];
	enum run_mode mode;
	sigset_t sigs;
	uint16_t port = 0;
	int r, sig = 0, port_given;

	config_defaults(&cfg);
	if ((r = parse_options(argc, argv, &cfg, &port_given, &mode)) != 0)
		return r > 0 ? 0 : 2;
	if (mode == RUN_FINGERPRINT) {
		if ((id = server_identity(&cfg, fp)) == NULL)
			return 1;
		printf("%s\n", fp);
		tls_identity_free(id);
		return 0;
	}
	settle_port_and_warn(&cfg, port_given);
	if (crypto_init() != 0) {
		log_server("fatal: libgcrypt initialisation failed");
		return 1;
	}
	raise_fd_limit();

	/* The workers inherit this mask: only the main thread takes SIGINT and SIGTERM. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (prepare_storage_and_db(&cfg) != 0)
		return 1;
	if (!cfg.no_v4) {
		if (make_tls_creds(&cfg, fp, &creds) != 0)
			return 1;
		cfg.tls_creds = creds;
	}

	if (server_start(&cfg, &srv, &port) != 0) {
		log_server("fatal: the server did not start");
		tls_creds_free(creds);
		return 1;
	}
	log_started(&cfg, creds != NULL ? fp : NULL, port);

	while (sigwait(&sigs, &sig) != 0)
		;
	log_server("%s received: no new connections; uploads in flight have %u s to finish",
	    sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.grace);
	server_stop(srv);
	server_free(srv);
	tls_creds_free(creds);
	log_server("stopped");
	return 0;
}
