/* limits.h: what one client or one source address may take of the server, counted across all
 * worker threads: concurrent uploads per client ID (a locked table keyed by ID) and
 * registrations/reconnects per source address (a token bucket per address in a fixed-size
 * table: memory does not grow with the number of addresses). The stored bytes and files of a
 * client are counted from the database (limits_storage_check). Process-wide state, guarded by
 * one mutex; tests call limits_reset() between cases. */
#ifndef SD_SERVER_LIMITS_H
#define SD_SERVER_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"

struct db;

/* Slots of the per-client upload table and of the per-address bucket table. Past the upload
 * table's size, new uploads are refused (it holds one entry per client with an upload in
 * progress, so it is sized like --max-connections' default). */
#define LIMITS_UPLOAD_SLOTS 16384u
#define LIMITS_ADDR_SLOTS 4096u
/* Probes per lookup in the address table; a full window evicts its least recently used. */
#define LIMITS_ADDR_PROBES 8u
#define LIMITS_ADDR_MAX 48u

/* Forgets every count (tests; the fuzz target between inputs). */
void limits_reset(void);

/* One more upload under id, unless max are in progress (max 0: no limit): 1 taken, 0 refused.
 * A taken slot is given back with limits_upload_end(). */
int limits_upload_begin(const uint8_t id[CLIENT_ID_SIZE], unsigned max);
void limits_upload_end(const uint8_t id[CLIENT_ID_SIZE]);
/* Uploads in progress under id (tests, invariants). */
unsigned limits_uploads(const uint8_t id[CLIENT_ID_SIZE]);

/* The source address of peer ("a.b.c.d:port" or "[v6]:port") without its port, in out. */
void limits_peer_address(const char *peer, char out[LIMITS_ADDR_MAX]);
/* Takes one token of addr's bucket (capacity per_minute, refilled per_minute per 60 s) at
 * now_ms (monotonic): 1 allowed, 0 over the limit. per_minute 0: no limit. */
int limits_registration_allow(const char *addr, unsigned per_minute, int64_t now_ms);

/* A finished attempt of bytes under id now waits for its verdict (commit.c): until
 * limits_unstage() it counts in limits_client_usage() as a new file of its full size (it may
 * be published by a 900 on its connection, whatever other connections of the client do).
 * 1 counted, 0 when the table is full (then the attempt must not be kept). */
int limits_stage(const uint8_t id[CLIENT_ID_SIZE], uint64_t bytes);
void limits_unstage(const uint8_t id[CLIENT_ID_SIZE], uint64_t bytes);
/* Attempts of id staged now (tests, invariants). */
unsigned limits_staged(const uint8_t id[CLIENT_ID_SIZE]);

/* What client id has stored and staged: the bytes and files of its rows, leaving out the row
 * stored at rel_path (the file an upload to rel_path would replace, whose size goes to
 * replaced_size), plus every attempt staged with limits_stage() and every partial version-4
 * upload recorded in the database but the one at rel_path (each a file of its full size,
 * conservatively: one that replaces a row is counted as well as that row). */
struct limits_usage {
	uint64_t bytes;
	uint64_t files;
	uint64_t replaced_size;
	int replaces;             /* a row at rel_path exists */
};
int limits_client_usage(struct db *db, const uint8_t id[CLIENT_ID_SIZE], const char *rel_path,
    struct limits_usage *out);

#endif
