/* handlers.h: the request handlers of the server for the small messages (SPEC.md sections
 * 3-6): each checks that the request is allowed in the connection's state, does its work on
 * the worker's database and queues the reply in the connection's output buffer. The 828
 * packets of an upload are receive.h's. A handler never frees its connection; on a fatal
 * problem it marks it closing (conn_close_later). */
#ifndef SD_SERVER_HANDLERS_H
#define SD_SERVER_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/codes.h"
#include "../protocol/frame.h"

struct conn;
struct conn_env;

/* A complete small message (825, 826, 827, 900, 901, 902, unknown codes, a short 828). */
void handlers_message(struct conn *c, const struct frame_event *ev);

/* A fresh client ID from the strong RNG (825, 827's pending registration, version 4's
 * REGISTER): never all zeros (what 825 headers carry), never starting with the byte that
 * starts a TLS record (SPEC-v4.md 1: such an ID could look like a ClientHello). */
#define HANDLERS_ID_NEVER_FIRST 0x16u
void handlers_new_client_id(uint8_t id[CLIENT_ID_SIZE]);

/* 1 when name (NUL-terminated, as decoded) is a valid client name: 1 to NAME_MAX_LEN bytes of
 * UTF-8 (shortest forms, no surrogates) without control characters (C0, DEL, C1). */
int handlers_name_valid(const char *name);

/* Deletes the pending registrations (a name without a key) older than --pending-ttl, so that
 * names cannot be held by registering without keys (issue 9 item 3). Logs what it removed. */
void handlers_expire_pending(struct conn_env *env);
/* Milliseconds between two handlers_expire_pending() sweeps: --pending-ttl, at most
 * CONFIG_PENDING_SWEEP_MAX seconds. */
int64_t handlers_pending_sweep_ms(const struct conn_env *env);

#endif
