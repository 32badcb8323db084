/* config.h: the server's settings: defaults, the port from port.info, checked number parsing.
 * Options themselves are read in main.c; this module only holds and validates values. */
#ifndef SD_SERVER_CONFIG_H
#define SD_SERVER_CONFIG_H

#include <stdint.h>

struct tls_creds;

#define CONFIG_DEFAULT_PORT 1256u
#define CONFIG_PORT_FILE "port.info"
#define CONFIG_DEFAULT_DB "defensive.db"
#define CONFIG_DEFAULT_STORAGE "files"
#define CONFIG_DEFAULT_BIND "0.0.0.0"
#define CONFIG_DEFAULT_MAX_CONNECTIONS 10000u
#define CONFIG_DEFAULT_IDLE_TIMEOUT 60u      /* seconds without a byte before a close */
#define CONFIG_DEFAULT_GRACE 10u             /* seconds uploads may finish after SIGTERM */
#define CONFIG_DEFAULT_MAX_FILE_SIZE 4294967295ull  /* the 32-bit size field's ceiling */
#define CONFIG_MAX_WORKERS 256u
/* Version 4 has 64-bit sizes: without --max-file-size its uploads may reach 2^63 - 1 bytes. */
#define CONFIG_DEFAULT_MAX_FILE_SIZE_V4 9223372036854775807ull
#define CONFIG_DEFAULT_RESUME_TTL 86400u      /* seconds a partial version-4 upload is kept */
#define CONFIG_DEFAULT_PENDING_TTL 600u      /* seconds a registration without a key lives */
#define CONFIG_PENDING_SWEEP_MAX 60u         /* seconds between sweeps of expired ones, at most */
/* Per client and per address (limits.h); 0 in a field below means no limit. */
#define CONFIG_DEFAULT_MAX_CLIENT_STORAGE (16ull << 30)  /* bytes stored per client */
#define CONFIG_DEFAULT_MAX_CLIENT_FILES 10000u           /* files stored per client */
#define CONFIG_DEFAULT_MAX_UPLOADS_PER_CLIENT 4u         /* concurrent, over all workers */
#define CONFIG_DEFAULT_MAX_REGISTRATIONS 120u            /* 825/827 per address per minute */
#define CONFIG_DEFAULT_MIN_UPLOAD_RATE 1024u             /* bytes/s over a whole upload */
#define CONFIG_DEFAULT_MIN_RATE_GRACE 30u                /* seconds before the rate counts */
#define CONFIG_DEFAULT_RETRY_REPLY_AFTER 1000u          /* ms: 901, nothing after: 1604 */

/* Strings point into argv or static defaults: they live as long as the process. */
struct server_config {
	const char *bind_addr;
	uint16_t port;
	const char *db_path;
	const char *storage_dir;
	unsigned workers;            /* 0: one per online core */
	unsigned max_connections;    /* global cap over all workers */
	unsigned idle_timeout;       /* seconds */
	unsigned grace;              /* seconds */
	uint64_t max_file_size;      /* plaintext bytes */
	uint64_t max_file_size_v4;   /* plaintext bytes of a version-4 upload (--max-file-size
	                              * sets both; version 3's field is 32 bits anyway) */
	unsigned resume_ttl;         /* seconds a partial version-4 upload is kept */
	unsigned test_corrupt_crc;   /* test only: first N 1603 of each connection carry a bad CRC */
	unsigned pending_ttl;        /* seconds: pending registrations (no key) older go */
	const char *tls_key_path;    /* NULL: server.key beside the database */
	const char *tls_cert_path;   /* NULL: server.crt beside the database */
	int no_v4;                   /* --no-v4: version 3 only, no TLS */
	/* The server's TLS credentials (made by main.c from the identity files, shared read-only
	 * by every worker and connection); NULL serves version 3 only. */
	const struct tls_creds *tls_creds;
	uint64_t max_client_storage; /* plaintext bytes stored per client */
	uint64_t max_client_files;   /* files stored per client */
	unsigned max_uploads_per_client;  /* uploads in progress per client ID */
	unsigned max_registrations;  /* 825, 827, 840, 841 per source address per minute */
	unsigned min_upload_rate;    /* bytes/s an upload must average after the grace */
	unsigned min_rate_grace;     /* seconds an upload may be slower at its start */
	unsigned retry_reply_after_ms;  /* a 901 followed by nothing this long gets 1604 (0: never) */
};

void config_defaults(struct server_config *c);

/* Reads the port (1-65535, one decimal number, surrounding whitespace allowed) from path.
 * 0 and *port set; SD_ERR_NOT_FOUND when the file is missing or unreadable; SD_ERR_BAD_FIELD
 * when its content is not a valid port. *port is left alone on failure. */
int config_read_port_file(const char *path, uint16_t *port);

/* A decimal number in [min, max] with nothing after it: 0 or SD_ERR_BAD_FIELD. */
int config_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* The number of workers to start: c->workers, or the online cores when it is 0. */
unsigned config_workers(const struct server_config *c);

#endif
