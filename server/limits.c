/* limits.c: per-client and per-address limits shared by all workers (limits.h): a table of
 * uploads in progress per client ID and a token bucket per source address, both of fixed
 * size, under one mutex (each operation is a few probes: the lock is held for microseconds). */
#include "limits.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../db/db.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"

/* Linear probing with backward-shift deletion: no tombstones, so lookups stay short however
 * many uploads begin and end. */
struct upload_slot {
	uint8_t id[CLIENT_ID_SIZE];
	unsigned count;           /* uploads in progress */
	unsigned staged;          /* finished attempts waiting for their verdict */
	uint64_t staged_bytes;    /* their sizes */
};

/* A slot is free when it counts nothing. */
static int
slot_used(const struct upload_slot *s)
{
	return s->count != 0 || s->staged != 0;
}

struct addr_slot {
	char addr[LIMITS_ADDR_MAX];   /* "" : free */
	double tokens;
	int64_t last_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct upload_slot uploads[LIMITS_UPLOAD_SLOTS];
static struct addr_slot addrs[LIMITS_ADDR_SLOTS];

void
limits_reset(void)
{
	pthread_mutex_lock(&lock);
	memset(uploads, 0, sizeof(uploads));
	memset(addrs, 0, sizeof(addrs));
	pthread_mutex_unlock(&lock);
}

/* FNV-1a: spreads IDs and addresses over the tables. */
static uint32_t
hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* The slot of id, or the free slot where it would go; NULL when the table is full. */
static struct upload_slot *
upload_find(const uint8_t id[CLIENT_ID_SIZE])
{
	size_t i = hash(id, CLIENT_ID_SIZE) % LIMITS_UPLOAD_SLOTS, n;

	for (n = 0; n < LIMITS_UPLOAD_SLOTS; n++, i = (i + 1) % LIMITS_UPLOAD_SLOTS) {
		if (!slot_used(&uploads[i]) || memcmp(uploads[i].id, id, CLIENT_ID_SIZE) == 0)
			return &uploads[i];
	}
	return NULL;
}

int
limits_upload_begin(const uint8_t id[CLIENT_ID_SIZE], unsigned max)
{
	struct upload_slot *s;
	int ok = 0;

	pthread_mutex_lock(&lock);
	if ((s = upload_find(id)) != NULL && (max == 0 || s->count < max)) {
		memcpy(s->id, id, CLIENT_ID_SIZE);
		s->count++;
		ok = 1;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Empties slot i and moves later entries of its probe run back into the gap. */
static void
upload_delete(size_t i)
{
	size_t j = i, home;

	memset(&uploads[i], 0, sizeof(uploads[i]));
	for (;;) {
		j = (j + 1) % LIMITS_UPLOAD_SLOTS;
		if (!slot_used(&uploads[j]))
			return;
		home = hash(uploads[j].id, CLIENT_ID_SIZE) % LIMITS_UPLOAD_SLOTS;
		/* Entry j may move to the gap i unless its home lies cyclically in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		uploads[i] = uploads[j];
		memset(&uploads[j], 0, sizeof(uploads[j]));
		i = j;
	}
}

void
limits_upload_end(const uint8_t id[CLIENT_ID_SIZE])
{
	struct upload_slot *s;

	pthread_mutex_lock(&lock);
	if ((s = upload_find(id)) != NULL && s->count > 0 && --s->count == 0 && !slot_used(s))
		upload_delete((size_t)(s - uploads));
	pthread_mutex_unlock(&lock);
}

int
limits_stage(const uint8_t id[CLIENT_ID_SIZE], uint64_t bytes)
{
	struct upload_slot *s;
	int ok = 0;

	pthread_mutex_lock(&lock);
	if ((s = upload_find(id)) != NULL) {
		memcpy(s->id, id, CLIENT_ID_SIZE);
		s->staged++;
		s->staged_bytes += bytes;
		ok = 1;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void
limits_unstage(const uint8_t id[CLIENT_ID_SIZE], uint64_t bytes)
{
	struct upload_slot *s;

	pthread_mutex_lock(&lock);
	if ((s = upload_find(id)) != NULL && s->staged > 0) {
		s->staged--;
		s->staged_bytes -= bytes < s->staged_bytes ? bytes : s->staged_bytes;
		if (s->staged == 0)
			s->staged_bytes = 0;
		if (!slot_used(s))
			upload_delete((size_t)(s - uploads));
	}
	pthread_mutex_unlock(&lock);
}

unsigned
limits_uploads(const uint8_t id[CLIENT_ID_SIZE])
{
	struct upload_slot *s;
	unsigned n = 0;

	pthread_mutex_lock(&lock);
	if ((s = upload_find(id)) != NULL)
		n = s->count;
	pthread_mutex_unlock(&lock);
	return n;
}

unsigned
limits_staged(const uint8_t id[CLIENT_ID_SIZE])
{
	struct upload_slot *s;
	unsigned n = 0;

	pthread_mutex_lock(&lock);
	if ((s = upload_find(id)) != NULL)
		n = s->staged;
	pthread_mutex_unlock(&lock);
	return n;
}

void
limits_peer_address(const char *peer, char out[LIMITS_ADDR_MAX])
{
	const char *end;
	size_t n;

	if (peer[0] == '[' && (end = strchr(peer, ']')) != NULL) {
		peer++;
	} else if ((end = strrchr(peer, ':')) == NULL) {
		end = peer + strlen(peer);
	}
	n = (size_t)(end - peer);
	if (n >= LIMITS_ADDR_MAX)
		n = LIMITS_ADDR_MAX - 1;
	memcpy(out, peer, n);
	out[n] = '\0';
}

int
limits_registration_allow(const char *addr, unsigned per_minute, int64_t now_ms)
{
	size_t i = hash(addr, strlen(addr)) % LIMITS_ADDR_SLOTS, n;
	struct addr_slot *s = NULL, *lru = NULL;
	int ok;

	if (per_minute == 0)
		return 1;
	pthread_mutex_lock(&lock);
	for (n = 0; n < LIMITS_ADDR_PROBES; n++, i = (i + 1) % LIMITS_ADDR_SLOTS) {
		struct addr_slot *t = &addrs[i];

		if (strcmp(t->addr, addr) == 0) {
			s = t;
			break;
		}
		if (lru == NULL || t->addr[0] == '\0' ||
		    (lru->addr[0] != '\0' && t->last_ms < lru->last_ms))
			lru = t;
	}
	if (s == NULL) {
		/* A new address takes a free slot or evicts the least recently used of its window:
		 * an evicted address starts again with a full bucket, which only loosens the
		 * limit for an address not seen for a while. */
		s = lru;
		snprintf(s->addr, sizeof(s->addr), "%s", addr);
		s->tokens = per_minute;
		s->last_ms = now_ms;
	}
	if (now_ms > s->last_ms) {
		s->tokens += (double)(now_ms - s->last_ms) * per_minute / 60000.0;
		if (s->tokens > per_minute)
			s->tokens = per_minute;
	}
	if (now_ms > s->last_ms || s->last_ms == 0)
		s->last_ms = now_ms;
	ok = s->tokens >= 1.0;
	if (ok)
		s->tokens -= 1.0;
	pthread_mutex_unlock(&lock);
	return ok;
}

struct usage_ctx {
	const char *rel_path;
	struct limits_usage *u;
};

static int
usage_row(void *ctx, const struct db_file *f)
{
	struct usage_ctx *x = ctx;

	if (strcmp(f->path_name, x->rel_path) == 0) {
		x->u->replaces = 1;
		x->u->replaced_size += f->size;
		return 0;
	}
	x->u->bytes += f->size;
	x->u->files++;
	return 0;
}

/* A partial version-4 upload counts like a staged attempt: a file of its declared size (its
 * connection may send the rest and publish it at any time), except the one stored at rel_path
 * (the upload being checked, which replaces it). */
static int
usage_partial(void *ctx, const struct db_upload *up)
{
	struct usage_ctx *x = ctx;
	char hex[CLIENT_ID_SIZE * 2 + 1];
	size_t hl = CLIENT_ID_SIZE * 2;

	hex_encode(up->owner, CLIENT_ID_SIZE, hex);
	if (strncmp(x->rel_path, hex, hl) == 0 && x->rel_path[hl] == '/' &&
	    strcmp(x->rel_path + hl + 1, up->file_name) == 0)
		return 0;
	x->u->bytes += up->size;
	x->u->files++;
	return 0;
}

int
limits_client_usage(struct db *db, const uint8_t id[CLIENT_ID_SIZE], const char *rel_path,
    struct limits_usage *out)
{
	struct usage_ctx x;
	struct upload_slot *s;
	int e;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&lock);
	if ((s = upload_find(id)) != NULL && slot_used(s)) {
		out->bytes = s->staged_bytes;
		out->files = s->staged;
	}
	pthread_mutex_unlock(&lock);
	x.rel_path = rel_path;
	x.u = out;
	if ((e = db_each_file(db, id, 0, usage_row, &x)) != 0)
		return e;
	return db_each_upload(db, id, usage_partial, &x);
}
