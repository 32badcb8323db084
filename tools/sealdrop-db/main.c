/* main.c: sealdrop-db, the read-only inspection tool for the server's database and storage
 * folder (clients, files, show, check), as aligned text or JSON, and the copy of a database
 * into another (migrate). Safe while the server runs. This file holds the command line;
 * list.c the listings, check.c the storage check, migrate.c the copy. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../db/db.h"
#include "../../protocol/crypto.h"
#include "../../protocol/err.h"
#include "check.h"
#include "list.h"
#include "migrate.h"
#include "output.h"

#ifndef SEALDROP_VERSION
#define SEALDROP_VERSION "unknown"
#endif

#define DEFAULT_DB "defensive.db"
#define DEFAULT_STORAGE "files"

struct opts {
	const char *db_path;
	const char *storage;
	int json;
	const char *client;
	int unverified;
	int no_crc;
	const char *cmd;
	const char *arg;
	const char *from;       /* migrate */
	const char *to;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: " PROG " [--db PATH] [--storage DIR] [--json] COMMAND\n"
	    "Read-only inspection of a sealdrop server's database; safe while the server runs.\n"
	    "PATH is a SQLite file or a PostgreSQL connection string (postgresql://...).\n"
	    "\n"
	    "commands:\n"
	    "  clients                          every client: ID, name, key fingerprint, AES key\n"
	    "                                   set, last seen (local time), number of files\n"
	    "  files [--client NAME|ID] [--unverified]\n"
	    "                                   file rows: owner, name, stored path, size, CRC,\n"
	    "                                   verified, upload time, SHA-256 (version 4)\n"
	    "  uploads [--client NAME|ID]       partial version-4 uploads: owner, file, size,\n"
	    "                                   durable offset, expiry, temporary file\n"
	    "  show NAME|ID                     one client and its files\n"
	    "  check [--no-crc]                 database integrity check, and every file row has its\n"
	    "                                   stored file (same size; a verified row's CRC is\n"
	    "                                   compared with the file's cksum unless --no-crc)\n"
	    "                                   and every stored file its row, and every partial\n"
	    "                                   upload its temporary file\n"
	    "  migrate --from SRC --to DST      copy clients, files, commit intents and partial\n"
	    "                                   uploads of SRC into DST (e.g. SQLite into\n"
	    "                                   PostgreSQL; again: no change), then check both\n"
	    "\n"
	    "options:\n"
	    "  --db PATH       the database (default " DEFAULT_DB ")\n"
	    "  --storage DIR   the storage folder (default: " DEFAULT_STORAGE " next to a SQLite\n"
	    "                  database, in the working folder for PostgreSQL)\n"
	    "  --json          JSON instead of aligned text\n"
	    "  --help, --version\n"
	    "\n"
	    "exit status: 0 ok, 1 problems found (check) or no such client, 2 usage error,\n"
	    "3 database missing, unreadable or not a sealdrop database\n");
}

static int
usage_error(const char *what, const char *arg)
{
	if (arg != NULL)
		fprintf(stderr, PROG ": %s '%s'\n", what, arg);
	else
		fprintf(stderr, PROG ": %s\n", what);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	return EXIT_USAGE;
}

/* Options may come before or after the command; "--" ends them. Returns -1 to go on, or an
 * exit status. */
static int
parse_args(int argc, char **argv, struct opts *o)
{
	const char *pos[2];
	int npos = 0, i, only_pos = 0, help = 0, version = 0;
	const char **value;
	const char *a, *eq;
	size_t namelen;

	memset(o, 0, sizeof(*o));
	o->db_path = DEFAULT_DB;
	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (npos == 2)
				return usage_error("too many arguments at", a);
			pos[npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (strcmp(a, "--unverified") == 0) {
			o->unverified = 1;
			continue;
		}
		if (strcmp(a, "--crc") == 0 || strcmp(a, "--no-crc") == 0) {
			o->no_crc = a[2] == 'n';  /* --crc is the default, accepted as such */
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help = 1;
			continue;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			version = 1;
			continue;
		}
		/* Options with a value: "--opt VALUE" or "--opt=VALUE". */
		eq = strchr(a, '=');
		namelen = eq != NULL ? (size_t)(eq - a) : strlen(a);
		if (namelen == 4 && strncmp(a, "--db", 4) == 0)
			value = &o->db_path;
		else if (namelen == 9 && strncmp(a, "--storage", 9) == 0)
			value = &o->storage;
		else if (namelen == 8 && strncmp(a, "--client", 8) == 0)
			value = &o->client;
		else if (namelen == 6 && strncmp(a, "--from", 6) == 0)
			value = &o->from;
		else if (namelen == 4 && strncmp(a, "--to", 4) == 0)
			value = &o->to;
		else
			return usage_error("unknown option", a);
		if (eq != NULL)
			*value = eq + 1;
		else if (i + 1 < argc)
			*value = argv[++i];
		else
			return usage_error("missing value after", a);
		if (**value == '\0')
			return usage_error("empty value for", a);
	}
	if (help) {
		usage(stdout);
		return EXIT_OK;
	}
	if (version) {
		printf(PROG " " SEALDROP_VERSION "\n");
		return EXIT_OK;
	}
	if (npos == 0)
		return usage_error("no command given (clients, files, uploads, show, check)", NULL);
	o->cmd = pos[0];
	o->arg = npos > 1 ? pos[1] : NULL;
	if ((o->from != NULL || o->to != NULL) != (strcmp(o->cmd, "migrate") == 0) ||
	    (strcmp(o->cmd, "migrate") == 0 && (o->from == NULL || o->to == NULL)))
		return usage_error("migrate needs --from and --to (and they go with migrate only)",
		    NULL);
	if (strcmp(o->cmd, "migrate") == 0) {
		if (o->arg != NULL)
			return usage_error("unexpected argument", o->arg);
	} else if (strcmp(o->cmd, "show") == 0) {
		if (o->arg == NULL)
			return usage_error("show needs a client name or ID", NULL);
	} else if (strcmp(o->cmd, "clients") != 0 && strcmp(o->cmd, "files") != 0 &&
	    strcmp(o->cmd, "uploads") != 0 && strcmp(o->cmd, "check") != 0) {
		return usage_error("unknown command", o->cmd);
	} else if (o->arg != NULL) {
		return usage_error("unexpected argument", o->arg);
	}
	if ((o->client != NULL && strcmp(o->cmd, "files") != 0 && strcmp(o->cmd, "uploads") != 0) ||
	    (o->unverified && strcmp(o->cmd, "files") != 0))
		return usage_error("--client goes with files and uploads, --unverified with files",
		    NULL);
	if (o->no_crc && strcmp(o->cmd, "check") != 0)
		return usage_error("--no-crc goes with the check command", NULL);
	return -1;
}

/* The storage folder: --storage, else "files" in the database's folder (the server's
 * default layout, wherever the tool is started from). Caller frees. */
static char *
storage_path(const struct opts *o)
{
	const char *slash;
	char *p;
	size_t n;

	if (o->storage != NULL)
		return strdup(o->storage);
	if (db_is_postgres(o->db_path))  /* no folder of its own: the working folder's */
		return strdup(DEFAULT_STORAGE);
	if ((slash = strrchr(o->db_path, '/')) == NULL)
		return strdup(DEFAULT_STORAGE);
	n = (size_t)(slash - o->db_path) + 1;
	if ((p = malloc(n + sizeof(DEFAULT_STORAGE))) == NULL)
		return NULL;
	memcpy(p, o->db_path, n);
	memcpy(p + n, DEFAULT_STORAGE, sizeof(DEFAULT_STORAGE));
	return p;
}

static int
open_db(const char *path, struct db **db)
{
	char reason[256], shown[512];
	int r = db_open_why(path, DB_READ_ONLY, db, reason, sizeof(reason));
	int fd = -1, pg = db_is_postgres(path);
	struct stat st;
	char *clean, *clean_reason = NULL;
	const char *why;

	if (r == 0)
		return EXIT_OK;
	switch (r) {
	case SD_ERR_NOT_FOUND:
		why = "no such database";
		break;
	case SD_ERR_IO:
		/* SQLite does not keep errno; ask the file system ourselves. */
		if (pg)
			why = "cannot connect";
		else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			why = "is a directory, not a database";
		else if ((fd = open(path, O_RDONLY)) < 0)
			why = strerror(errno);
		else
			why = "cannot open";
		if (fd >= 0)
			close(fd);
		break;
	case SD_ERR_SCHEMA:
		why = "not a sealdrop database";
		break;
	default:
		why = sd_strerror(r);
		break;
	}
	/* A connection string may hold a password: it is not echoed, only where the database
	 * is; PostgreSQL's reason (libpq's or the server's, passwords masked by db/) follows. */
	db_describe_target(path, shown, sizeof(shown));
	clean = out_clean(shown);
	if (pg && reason[0] != '\0')
		clean_reason = out_clean(reason);
	fprintf(stderr, PROG ": %s: %s%s%s\n", clean != NULL ? clean : pg ?
	    "the PostgreSQL database" : path, why, clean_reason != NULL ? ": " : "",
	    clean_reason != NULL ? clean_reason : "");
	free(clean);
	free(clean_reason);
	return EXIT_NO_DB;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct list_query q;
	struct db *db = NULL;
	char *storage = NULL;
	int status;

	if ((status = parse_args(argc, argv, &o)) >= 0)
		return status;
	if (crypto_init() != 0) {
		fprintf(stderr, PROG ": cannot initialise libgcrypt\n");
		return EXIT_PROBLEMS;
	}
	if (strcmp(o.cmd, "migrate") == 0)
		return migrate(o.from, o.to);
	if ((status = open_db(o.db_path, &db)) != EXIT_OK)
		return status;
	q.db = db;
	q.db_path = o.db_path;
	q.json = o.json;
	q.client = o.client;
	q.unverified = o.unverified;
	q.which = o.arg;
	if (strcmp(o.cmd, "clients") == 0)
		status = list_clients(&q);
	else if (strcmp(o.cmd, "files") == 0)
		status = list_files(&q);
	else if (strcmp(o.cmd, "uploads") == 0)
		status = list_uploads(&q);
	else if (strcmp(o.cmd, "show") == 0)
		status = list_show(&q);
	else if ((storage = storage_path(&o)) == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		status = EXIT_PROBLEMS;
	} else
		status = check_storage(db, o.json, !o.no_crc, storage);
	free(storage);
	db_close(db);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, PROG ": writing the output: %s\n", strerror(errno));
		if (status == EXIT_OK)
			status = EXIT_PROBLEMS;
	}
	return status;
}
