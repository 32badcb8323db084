/* options.h: the client's command line and its exit statuses (documented in --help). */
#ifndef SD_CLIENT_OPTIONS_H
#define SD_CLIENT_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses: each failure class has its own, so scripts can tell them apart. */
enum client_exit {
	CX_OK = 0,             /* the server confirmed the CRC (900 answered) */
	CX_USAGE = 1,          /* bad command line */
	CX_TRANSFER_INFO = 2,  /* transfer.info missing or malformed (or a bad --server/--name) */
	CX_ME_INFO = 3,        /* me.info / priv.key unreadable, malformed, or cannot be written */
	CX_FILE = 4,           /* the file cannot be read, is too large, or changed while sent */
	CX_CONNECT = 5,        /* cannot resolve or connect to the server */
	CX_CONNECTION = 6,     /* connection lost, or the server stopped answering (timeout) */
	CX_SERVER = 7,         /* the server answered with errors after every retry, or broke
	                        * the protocol */
	CX_CRC = 8,            /* CRC mismatch on all 4 attempts (902 sent) */
	CX_REFUSED = 9,        /* registration refused (1601: name taken or invalid) */
	CX_SERVER_KEY = 10,    /* version 4: the server's key is not the pinned one, or a pinned
	                        * server did not speak version 4 (downgrade refused) */
	CX_NOT_FOUND = 11,     /* get / rm: no such file on the server */
};

/* What the client does (the words after the options). */
enum client_command {
	CMD_SEND = 0,   /* default: send transfer.info's file, or `send [FILE]` */
	CMD_LIST,       /* `list`: the account's files (version 4) */
	CMD_GET,        /* `get NAME [-o PATH]` (version 4) */
	CMD_RM,         /* `rm NAME` (version 4) */
};

enum client_protocol {
	PROTO_AUTO = 0, /* TLS first; version 3 when the server does not speak it (not pinned) */
	PROTO_V3,       /* version 3 only, never TLS */
	PROTO_V4,       /* version 4 only, never a fallback */
};

enum client_compress {
	COMPRESS_AUTO = 0, /* deflate chunks while it pays (SPEC-v4.md Uploads) */
	COMPRESS_YES,
	COMPRESS_NO,
};

#define DEFAULT_PACKET_SIZE 65536u      /* ciphertext bytes per 828 (variant 1) */
#define PACKET_SIZE_MAX (1u << 30)      /* sanity cap on --packet-size */
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS 30000
#define TIMEOUT_MAX_MS (24 * 3600 * 1000)
#define DEFAULT_RETRIES 5u              /* version 4: reconnects after a dropped connection */
#define RETRIES_MAX 1000u

struct client_options {
	const char *dir;        /* -C: chdir there first (NULL: stay) */
	const char *transfer;   /* --transfer: path of transfer.info */
	const char *file;       /* --file: overrides transfer.info line 3 */
	const char *server;     /* --server: overrides line 1 */
	const char *name;       /* --name: overrides line 2 */
	int quiet;
	int verbose;
	int connect_timeout_ms;
	int timeout_ms;
	uint32_t packet_size;
	int packet_size_set;    /* 1: --packet-size given (never enlarged automatically) */
	int first_packet;       /* 0 or 1 */
	int pad_last_packet;
	int per_packet;
	int single_packet;
	int paced;              /* --paced: each packet in one write, after the previous one left */
	int help;
	int version;
	enum client_command command;
	const char *arg;        /* send: the file (NULL: transfer.info's); get, rm: the name */
	const char *output;     /* get -o PATH (NULL: the name in the working directory) */
	int json;               /* list --json */
	enum client_protocol protocol;
	const char *server_key; /* --server-key SHA256:... (checked well-formed) */
	enum client_compress compress;
	uint32_t retries;       /* --retries N */
};

/* Parses argv (argument strings are borrowed, not copied). 0, or SD_ERR_INVALID_ARG with a
 * one-line reason in why. Can be called more than once (resets getopt). */
int options_parse(int argc, char **argv, struct client_options *o, char *why, size_t why_cap);
/* The --help text. */
void options_usage(FILE *f);

#endif
