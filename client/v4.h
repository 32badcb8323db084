/* v4.h: the client's version-4 session (SPEC-v4.md): me.key and known_servers, the TLS
 * connection with the server key pinned or recorded on first use, the account flows
 * (REGISTER, WHOAMI, LINK + PROVE, REGISTER again after ERROR 3), and the commands built on
 * them (commands.c: send, list, get, rm) with reconnects after a dropped connection. Prints
 * its messages (log.h) and returns exit statuses (options.h). */
#ifndef SD_CLIENT_V4_H
#define SD_CLIENT_V4_H

#include <stdint.h>

#include "../protocol/tls.h"
#include "files.h"
#include "known_servers.h"
#include "me_info.h"
#include "options.h"
#include "../protocol/msg4.h"
#include "v4conn.h"

#define V4_BACKOFF_FIRST_MS 1000   /* first wait before a reconnect, doubled each time */
#define V4_BACKOFF_MAX_MS 30000

struct v4_config {
	const char *host;
	const char *port;
	const char *name;          /* transfer.info / --name: the name to REGISTER */
	const char *me_path;       /* me.info */
	const char *priv_path;     /* priv.key */
	const char *key_path;      /* me.key */
	const char *known_path;    /* known_servers */
	const char *transfer_path; /* transfer.info (--transfer): get never writes over it */
	const char *server_key;    /* --server-key, or NULL */
	int connect_timeout_ms;
	int timeout_ms;
	uint32_t retries;
	enum client_command command;
	const char *file_path;     /* send */
	const char *arg;           /* get, rm: the name on the server */
	const char *output;        /* get -o */
	int json;                  /* list --json */
	enum client_compress compress;
	int progress;
};

/* The client's state across the connections of one run. */
struct v4_client {
	const struct v4_config *cfg;
	struct me_info me;
	int have_me;
	struct tls_identity *ident;
	int ident_unsaved;         /* 1: ident is new and me.key not yet written */
	/* The RSA key of a REGISTER not yet answered by WELCOME (owned). It is in priv.key, and
	 * ident in me.key, before REGISTER is sent: when the reply is lost, the next connection
	 * (or run) asks WHOAMI and writes me.info with it instead of registering again. */
	struct rsa_private *pending;
	struct tls_creds *creds;
	char server_key[SERVER_KEY_TEXT_MAX + 1];  /* "host:port" line key */
	char pinned[TLS_FP_TEXT_SIZE];             /* "" when unknown (trust on first use) */
	int pinned_by_option;
	struct v4conn *conn;
	int connected_once;
	uint8_t id[CLIENT_ID_SIZE];
	struct msg4_error last_error;              /* the last 1619 ERROR received */
	uint16_t transient;        /* the reason (8 busy, 9 storage) if the last reply was an
	                            * ERROR worth retrying, which closed the connection; else 0 */
};

/* A response: its code and payload (valid until the next read). */
struct v4_reply {
	uint16_t code;
	const uint8_t *p;
	size_t n;
};

/* Runs cfg->command over version 4. When the server does not speak TLS: if allow_fallback
 * and the server is not pinned, sets *not_v4 = 1 and returns CX_OK without doing anything
 * (the caller speaks version 3); otherwise refuses (CX_SERVER_KEY if pinned). */
int v4_run(const struct v4_config *cfg, int allow_fallback, int *not_v4);

/* ---- for commands.c ---- */

/* Opens a connection and establishes the account (every connection of the run). 0 or an
 * exit status (CX_CONNECT, CX_CONNECTION: may be retried). */
int v4_connect(struct v4_client *c);
void v4_disconnect(struct v4_client *c);
/* Sends a request (req: a whole message from a msg4_put_* encoder; code for the log) and
 * reads the response. 0, or CX_CONNECTION (logged as a warning with what; the connection is
 * closed) / CX_SERVER (framing broken). A 1619 ERROR is returned as a response
 * (rep->code == RESP4_ERROR); v4_error_reply() decodes it. Except ERROR 8 (busy) and 9
 * (storage failure): they are passing (docs/deployment.md: a database restart), so they are
 * logged, the connection is closed and CX_CONNECTION returned, to be retried as a lost
 * connection is (c->transient says so). */
int v4_call(struct v4_client *c, uint16_t code, const struct buf *req, struct v4_reply *rep,
    const char *what);
int v4_read(struct v4_client *c, struct v4_reply *rep, const char *what);
/* rep is an ERROR 8 or 9: logs it, closes the connection, sets c->transient and returns
 * CX_CONNECTION. Otherwise 0. */
int v4_transient_error(struct v4_client *c, const struct v4_reply *rep, const char *what);
/* Decodes an ERROR into c->last_error, logs it with what, returns its reason (0 if the
 * payload does not decode). */
unsigned v4_error_reply(struct v4_client *c, const struct v4_reply *rep, const char *what);
/* Logs an unexpected reply and returns CX_SERVER. */
int v4_unexpected(uint16_t code, const char *what);
/* Waits before reconnect number attempt (1, 2, ...). */
void v4_backoff(unsigned attempt);

/* commands.c */
int v4_cmd_send(struct v4_client *c);
int v4_cmd_list(struct v4_client *c);
int v4_cmd_get(struct v4_client *c);
int v4_cmd_rm(struct v4_client *c);

#endif
