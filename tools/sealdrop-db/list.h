/* list.h: the listing commands of sealdrop-db (clients, files, show). Each prints to stdout
 * (JSON or an aligned table), reports failures on stderr and returns an exit status of
 * output.h. The database stays the caller's. */
#ifndef SD_TOOL_LIST_H
#define SD_TOOL_LIST_H

struct db;

struct list_query {
	struct db *db;
	const char *db_path;    /* shown in messages */
	int json;
	const char *client;     /* files, uploads: only this client's (NAME|ID), or NULL for all */
	int unverified;         /* files: only rows not verified */
	const char *which;      /* show: the client (NAME|ID) */
};

/* Every client: ID, name, key fingerprint, AES key set, last seen, number of files. */
int list_clients(const struct list_query *q);
/* File rows (all, or q->client's; only unverified ones if q->unverified). */
int list_files(const struct list_query *q);
/* Partial version-4 uploads (all, or q->client's): owner, file, size, durable offset,
 * expiry, temporary file. */
int list_uploads(const struct list_query *q);
/* One client (q->which) and its files. EXIT_PROBLEMS if there is no such client. */
int list_show(const struct list_query *q);

#endif
