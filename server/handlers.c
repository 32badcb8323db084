/* handlers.c: what the server does for each small request (SPEC.md sections 3-6): register,
 * public key, reconnect and the CRC verdicts. The 828 packets of an upload go to receive.c.
 * Replies are queued in the connection's output buffer. */
#include "handlers.h"

#include <string.h>

#include "../db/db.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/msg.h"
#include "../protocol/rsa.h"
#include "../protocol/text.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "crash.h"
#include "limits.h"
#include "log.h"

static void
reply_id(struct conn *c, uint16_t code, const uint8_t id[CLIENT_ID_SIZE])
{
	conn_queued(c, msg_put_client_id_response(&c->out, code, id));
}

void
handlers_new_client_id(uint8_t id[CLIENT_ID_SIZE])
{
	static const uint8_t zero[CLIENT_ID_SIZE];

	do
		crypto_random(id, CLIENT_ID_SIZE);
	while (memcmp(id, zero, CLIENT_ID_SIZE) == 0 || id[0] == HANDLERS_ID_NEVER_FIRST);
}

int
handlers_name_valid(const char *name)
{
	return text_name_check(name, NULL) == 0;
}

/* A fresh AES key for client id: wrapped to its public key (spki, len), stored as the client's
 * most recent key, made the connection's key and sent in a reply of code (1602 or 1605).
 * For 826, store_spki = 1 also stores the public key (with the AES key in one transaction, so
 * a failure leaves the client able to try 826 again). */
static int
issue_key(struct conn *c, uint16_t code, const uint8_t id[CLIENT_ID_SIZE], const char *name,
    const uint8_t *spki, size_t spki_len, int store_spki)
{
	struct rsa_public *pub = NULL;
	struct msg_aes_key reply;
	uint8_t key[AES_KEY_SIZE];
	int r;

	memset(&reply, 0, sizeof(reply));
	if ((r = rsa_public_from_spki(spki, spki_len, &pub)) != 0)
		goto out;
	crypto_random(key, sizeof(key));
	if ((r = rsa_oaep_wrap(pub, key, reply.wrapped_key)) != 0)
		goto out;
	/* Both keys in one transaction: a public key stored without the AES key would refuse
	 * the client's retried 826 ("has a key already"). */
	if ((r = store_spki ? db_client_set_keys(c->env->db, id, spki, spki_len, key) :
	    db_client_set_aes_key(c->env->db, id, key)) != 0)
		goto out;
	conn_set_identity(c, id, name, key);
	memcpy(reply.client_id, id, CLIENT_ID_SIZE);
	conn_queued(c, msg_put_aes_key_response(&c->out, code, &reply));
	r = 0;
out:
	crypto_wipe(key, sizeof(key));
	rsa_public_free(pub);
	return r;
}

/* 825: SPEC.md 6. */
static void
handle_register(struct conn *c, const struct frame_event *ev)
{
	char name[NAME_FIELD_SIZE];
	uint8_t id[CLIENT_ID_SIZE];
	int r;

	if ((r = msg_name_decode(ev->data, ev->len, name)) == SD_ERR_BAD_SIZE) {
		conn_log(c, "register", "refused: %s", sd_strerror(r));
		conn_reply_error(c);
		return;
	}
	if (r != 0 || !handlers_name_valid(name)) {
		conn_log(c, "register", "refused: invalid name");
		conn_queued(c, msg_put_empty_response(&c->out, RESP_REGISTER_FAILED));
		return;
	}
	handlers_new_client_id(id);
	/* A pending name (registered, no key yet) may be registered again only on the
	 * connection that created it (SPEC.md 6, issue 9 item 3): its ID is this connection's. */
	if ((r = db_client_register_conn(c->env->db, name, id, c->known ? c->id : NULL)) != 0) {
		char safe[LOG_NAME_MAX + 4];

		log_sanitize(name, safe, sizeof(safe));
		if (r == SD_ERR_EXISTS) {
			conn_log(c, "register", "refused: name \"%s\" taken", safe);
			conn_queued(c, msg_put_empty_response(&c->out, RESP_REGISTER_FAILED));
		} else {
			conn_log(c, "register", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->env->db));
			conn_reply_error(c);
		}
		return;
	}
	conn_set_identity(c, id, name, NULL);
	conn_log(c, "register", "ok: 1600");
	reply_id(c, RESP_REGISTERED, id);
}

/* Why 826 was refused, for the log, when its key could not be stored: the checks of
 * handle_public_key in their order (unknown ID, another name, a key stored already), else
 * what storing said (r). */
static void
log_key_refused(struct conn *c, const uint8_t *id, const char *name, int r)
{
	struct db_client cl;
	int q = db_client_by_id(c->env->db, id, &cl);

	if (q != 0)
		conn_log(c, "public key", "refused: %s",
		    q == SD_ERR_NOT_FOUND ? "unknown client ID" : db_errmsg(c->env->db));
	else if (strcmp(cl.name, name) != 0)
		conn_log(c, "public key", "refused: name does not match the ID");
	else if (cl.has_public_key)
		conn_log_as(c, id, cl.name, "public key", "refused: the client has a key already");
	else
		conn_log_as(c, id, cl.name, "public key", "refused: %s", sd_strerror(r));
	crypto_wipe(&cl, sizeof(cl));
}

/* 826: a key for a registered client that has none; never replaces a key. On the connection
 * that registered the ID (825, or 827's pending registration) the ID's name is known without
 * reading the row (an ID never changes its name): the key is stored at once, the UPDATE only
 * matching a row without a key, and the row is read only to say why it was refused. */
static void
handle_public_key(struct conn *c, const struct frame_event *ev)
{
	const uint8_t *id = ev->header->client_id;
	char name[NAME_FIELD_SIZE];
	uint8_t spki[PUBLIC_KEY_SIZE];
	struct db_client cl;
	int r;

	memset(&cl, 0, sizeof(cl));
	if ((r = msg_public_key_decode(ev->data, ev->len, name, spki)) != 0) {
		conn_log(c, "public key", "refused: %s", sd_strerror(r));
		goto fail;
	}
	if (c->known && memcmp(c->id, id, CLIENT_ID_SIZE) == 0 && strcmp(c->name, name) == 0) {
		if ((r = issue_key(c, RESP_AES_KEY, id, name, spki, sizeof(spki), 1)) != 0) {
			log_key_refused(c, id, name, r);
			goto fail;
		}
		conn_log(c, "public key", "ok: 1602");
		return;
	}
	if ((r = db_client_by_id(c->env->db, id, &cl)) != 0) {
		conn_log(c, "public key", "refused: %s",
		    r == SD_ERR_NOT_FOUND ? "unknown client ID" : db_errmsg(c->env->db));
		goto fail;
	}
	if (strcmp(cl.name, name) != 0) {
		conn_log(c, "public key", "refused: name does not match the ID");
		goto fail;
	}
	if (cl.has_public_key) {
		/* The ID travels in clear: replacing the key would hand the account over. */
		conn_log_as(c, id, cl.name, "public key",
		    "refused: the client has a key already");
		goto fail;
	}
	if ((r = issue_key(c, RESP_AES_KEY, id, cl.name, spki, sizeof(spki), 1)) != 0) {
		conn_log_as(c, id, cl.name, "public key", "refused: %s",
		    sd_strerror(r));
		goto fail;
	}
	conn_log(c, "public key", "ok: 1602");
	crypto_wipe(&cl, sizeof(cl));
	return;
fail:
	crypto_wipe(&cl, sizeof(cl));
	conn_reply_error(c);
}

/* 827: SPEC.md 6, including the pending registration of an unknown name. */
static void
handle_reconnect(struct conn *c, const struct frame_event *ev)
{
	const uint8_t *req_id = ev->header->client_id;
	char name[NAME_FIELD_SIZE];
	char safe[LOG_NAME_MAX + 4];
	uint8_t id[CLIENT_ID_SIZE];
	struct db_client cl;
	int r;

	memset(&cl, 0, sizeof(cl));
	if ((r = msg_name_decode(ev->data, ev->len, name)) != 0 || !handlers_name_valid(name)) {
		conn_log(c, "reconnect", "refused: %s", r != 0 ? sd_strerror(r) : "invalid name");
		conn_reply_error(c);
		return;
	}
	log_sanitize(name, safe, sizeof(safe));
	r = db_client_by_name(c->env->db, name, &cl);
	if (r == SD_ERR_NOT_FOUND) {
		/* Unknown name: a pending registration whose ID travels in 1606, so that clients
		 * going on with 826 and clients going on with 825 both carry on. */
		handlers_new_client_id(id);
		if ((r = db_client_register_conn(c->env->db, name, id, NULL)) != 0) {
			conn_log(c, "reconnect", "name \"%s\" unknown; registering failed: %s", safe,
			    sd_strerror(r));
			reply_id(c, RESP_RECONNECT_DENIED, req_id);
			return;
		}
		conn_set_identity(c, id, name, NULL);
		conn_log(c, "reconnect", "denied: unknown name, pending registration: 1606 (new ID)");
		reply_id(c, RESP_RECONNECT_DENIED, id);
		return;
	}
	if (r != 0) {
		conn_log(c, "reconnect", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->env->db));
		conn_reply_error(c);
		return;
	}
	if (memcmp(cl.id, req_id, CLIENT_ID_SIZE) != 0 || !cl.has_public_key) {
		/* A known name is never handed to whoever knows it. */
		if (memcmp(cl.id, req_id, CLIENT_ID_SIZE) == 0)
			conn_touch(c, req_id);
		conn_log_as(c, req_id, name, "reconnect", "denied: %s: 1606",
		    cl.has_public_key ? "ID does not match the name" : "no public key stored");
		crypto_wipe(&cl, sizeof(cl));
		reply_id(c, RESP_RECONNECT_DENIED, req_id);
		return;
	}
	r = issue_key(c, RESP_RECONNECTED, cl.id, cl.name, cl.public_key,
	    cl.public_key_len > 0 && cl.public_key_len <= PUBLIC_KEY_SIZE ?
	    cl.public_key_len : PUBLIC_KEY_SIZE, 0);
	crypto_wipe(&cl, sizeof(cl));
	if (r != 0) {
		conn_log_as(c, req_id, name, "reconnect", "failed: %s",
		    sd_strerror(r));
		conn_reply_error(c);
		return;
	}
	conn_log(c, "reconnect", "ok: 1605");
}

/* Nothing waits for a verdict (a verdict repeated): the same verdict on the row already
 * published is answered again, anything else is refused. A publishing that failed left its
 * intent: it is settled first, so that the answer is about the version the client sent; when
 * nothing could be settled after a failure on this connection, the row is the version stored
 * before, which this client did not send, and the verdict is refused. 0: answer 1604. */
static int
repeated_verdict(struct conn *c, int verified, const char *file_name, const char *what,
    const char *safe)
{
	struct db_file f;
	int r;

	if (commit_settle(c, file_name) == 1) {
		conn_log(c, what, "\"%s\": the commit a failed publishing left is rolled forward",
		    safe);
		c->verdict_failed = 0;
	}
	if (c->verdict_failed) {
		conn_log(c, what, "\"%s\" refused: storing it failed; the version stored before "
		    "stays", safe);
		return SD_ERR_IO;
	}
	r = db_file_get(c->env->db, c->id, file_name, &f);
	if (r == 0 && f.verified != verified)
		r = SD_ERR_NOT_FOUND;
	if (r != 0)
		conn_log(c, what, "\"%s\" refused: %s", safe, r == SD_ERR_NOT_FOUND ?
		    "no received file waits for this verdict" : db_errmsg(c->env->db));
	return r;
}

/* 900, 901, 902: only after this connection received a file from this client. */
static void
handle_verdict(struct conn *c, const struct frame_event *ev)
{
	uint16_t code = ev->header->code;
	char file_name[NAME_FIELD_SIZE];
	char safe[LOG_NAME_MAX + 4];
	const char *what = code == REQ_CRC_OK ? "crc ok" :
	    code == REQ_CRC_RETRY ? "crc retry" : "crc fail";
	int r;

	if ((r = msg_name_decode(ev->data, ev->len, file_name)) != 0) {
		conn_log(c, what, "refused: %s", sd_strerror(r));
		conn_reply_error(c);
		return;
	}
	if (!c->known || memcmp(ev->header->client_id, c->id, CLIENT_ID_SIZE) != 0 ||
	    c->uploads_done == 0) {
		conn_log(c, what, "refused: no file received from this client on this connection");
		conn_reply_error(c);
		return;
	}
	log_sanitize(file_name, safe, sizeof(safe));
	if (strcmp(file_name, c->last_file) != 0) {
		/* A verdict is about the file whose CRC was just reported, not any other. */
		conn_log(c, what, "\"%s\" refused: the last file received was another one", safe);
		conn_reply_error(c);
		return;
	}
	conn_touch(c, c->id);
	if (code == REQ_CRC_RETRY) {
		/* No reply (SPEC.md 3); the attempt goes, the resend is a new one. */
		commit_discard(c);
		c->awaiting_verdict = 0;
		c->retry_since_ms = c->env->now_ms > 0 ? c->env->now_ms : 1;
		conn_log(c, what, "\"%s\": waiting for the resend", safe);
		return;
	}
	if (commit_staged(c, file_name)) {
		r = commit_verdict(c, code == REQ_CRC_OK);
		c->verdict_failed = r != 0;
	} else {
		r = repeated_verdict(c, code == REQ_CRC_OK, file_name, what, safe);
	}
	if (r != 0) {
		conn_reply_error(c);
		return;
	}
	c->awaiting_verdict = 0;
	conn_log(c, what, "\"%s\" %s: 1604", safe, code == REQ_CRC_OK ? "verified" :
	    "left unverified");
	reply_id(c, RESP_ACK, c->id);
	if (crash_armed("after-1604")) {
		conn_flush(c);
		crash_point("after-1604");
	}
}

void
handlers_expire_pending(struct conn_env *env)
{
	long removed = 0;
	int r = db_client_expire_pending(env->db, (int64_t)env->cfg->pending_ttl, &removed);

	if (r != 0)
		log_event(env->index, NULL, NULL, NULL, "pending", "expiry failed: %s (%s)",
		    sd_strerror(r), db_errmsg(env->db));
	else if (removed > 0)
		log_event(env->index, NULL, NULL, NULL, "pending", "%ld registration%s without a "
		    "key for more than %u s removed", removed, removed == 1 ? "" : "s",
		    env->cfg->pending_ttl);
}

int64_t
handlers_pending_sweep_ms(const struct conn_env *env)
{
	unsigned s = env->cfg->pending_ttl < CONFIG_PENDING_SWEEP_MAX ? env->cfg->pending_ttl :
	    CONFIG_PENDING_SWEEP_MAX;

	return (int64_t)(s > 0 ? s : 1) * 1000;
}

/* --max-registrations-per-minute: 825 and 827 take a token of the source address's bucket.
 * Over the limit: 1607, sent at once, a log line, and the connection closes. 1 allowed. */
static int
registration_allowed(struct conn *c)
{
	char addr[LIMITS_ADDR_MAX];
	unsigned max = c->env->cfg->max_registrations;

	limits_peer_address(c->peer, addr);
	if (limits_registration_allow(addr, max, c->env->now_ms))
		return 1;
	conn_log_end(c, "limit", "more than %u registrations and reconnects a minute from %s "
	    "(--max-registrations-per-minute): 1607; closing", max, addr);
	conn_queued(c, msg_put_empty_response(&c->out, RESP_ERROR));
	conn_close_after_reply(c);
	return 0;
}

void
handlers_message(struct conn *c, const struct frame_event *ev)
{
	if ((ev->header->code == REQ_REGISTER || ev->header->code == REQ_RECONNECT) &&
	    !registration_allowed(c))
		return;
	switch (ev->header->code) {
	case REQ_REGISTER:
		handle_register(c, ev);
		break;
	case REQ_PUBLIC_KEY:
		handle_public_key(c, ev);
		break;
	case REQ_RECONNECT:
		handle_reconnect(c, ev);
		break;
	case REQ_CRC_OK:
	case REQ_CRC_RETRY:
	case REQ_CRC_FAIL:
		handle_verdict(c, ev);
		break;
	case REQ_SEND_FILE:
		conn_log(c, "send file", "refused: payload shorter than the packet header");
		conn_reply_error(c);
		break;
	default:
		conn_log(c, "request", "refused: unknown code %u", (unsigned)ev->header->code);
		conn_reply_error(c);
		break;
	}
}
