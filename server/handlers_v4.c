/* handlers_v4.c: version-4 requests inside TLS (SPEC-v4.md "Accounts"): REGISTER, LINK +
 * PROVE, WHOAMI, the rule that nothing else comes before WELCOME, and the dispatch point of
 * the transfers. The account of a connection is the one whose stored fingerprint is its
 * client certificate's. */
#include "handlers_v4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../db/db.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/msg.h"
#include "../protocol/msg4.h"
#include "../protocol/rsa.h"
#include "config.h"
#include "conn.h"
#include "handlers.h"
#include "limits.h"
#include "log.h"
#include "put.h"
#include "xfer.h"

/* Before WELCOME a connection may have this many requests refused; then it is closed. */
#define V4_UNKNOWN_MAX_ERRORS 32u

/* LINK's nonce is wrapped like version 3's AES key: the OAEP functions take that size. */
_Static_assert(V4_NONCE_SIZE == AES_KEY_SIZE, "the nonce travels as an OAEP-wrapped AES key");

void
handlers_v4_error(struct conn *c, uint16_t reason, const char *message)
{
	conn_queued(c, msg4_put_error(&c->out, reason, message));
	c->errors++;
	if (!c->known && c->errors > V4_UNKNOWN_MAX_ERRORS) {
		conn_log(c, "limit", "too many refused requests before WELCOME; closing");
		conn_close_after_reply(c);
	}
}

void
handlers_v4_fail(struct conn *c, uint16_t reason, const char *message)
{
	conn_queued(c, msg4_put_error(&c->out, reason, message));
	conn_close_after_reply(c);
}

void
handlers_v4_start(struct conn *c, const char *fp)
{
	snprintf(c->fingerprint, sizeof(c->fingerprint), "%s", fp);
	conn_log(c, "tls", "handshake ok: client key %.*s", HANDLERS_V4_FP_SHORT, c->fingerprint);
}

/* Equal in time that does not depend on where the bytes differ. */
static int
same_secret(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < n; i++)
		diff = (uint8_t)(diff | (a[i] ^ b[i]));
	return diff == 0;
}

static void
forget_challenge(struct conn *c)
{
	c->challenge_set = 0;
	crypto_wipe(c->challenge_nonce, sizeof(c->challenge_nonce));
	memset(c->challenge_id, 0, sizeof(c->challenge_id));
}

/* The account (id, name) is this connection's from now on: WELCOME. A challenge still
 * outstanding (LINK, then WHOAMI) is spent: no PROVE can change the account afterwards. */
static void
welcome(struct conn *c, const uint8_t id[CLIENT_ID_SIZE], const char *name, const char *event)
{
	forget_challenge(c);
	conn_set_identity(c, id, name, NULL);
	conn_log(c, event, "ok: 1610 WELCOME, client key %.*s", HANDLERS_V4_FP_SHORT,
	    c->fingerprint);
	conn_queued(c, msg4_put_welcome(&c->out, id, name));
}

/* 840: a new account with the version-3 key it carries and this certificate. */
static void
handle_register(struct conn *c, const struct frame_event *ev)
{
	struct msg4_register m;
	struct rsa_public *pub = NULL;
	char safe[LOG_NAME_MAX + 4];
	uint8_t id[CLIENT_ID_SIZE];
	int r;

	if ((r = msg4_register_decode(ev->data, ev->len, &m)) != 0) {
		conn_log(c, "register", "refused: %s", sd_strerror(r));
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "malformed REGISTER");
		return;
	}
	log_sanitize(m.name, safe, sizeof(safe));
	if (!handlers_name_valid(m.name)) {
		conn_log(c, "register", "refused: invalid name \"%s\"", safe);
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "invalid name");
		return;
	}
	/* The key must serve version 3 and LINK's challenge: RSA-1024 (128-byte OAEP). */
	r = rsa_public_from_spki(m.public_key, sizeof(m.public_key), &pub);
	if (r != 0 || rsa_public_bits(pub) != RSA_BITS) {
		rsa_public_free(pub);
		conn_log(c, "register", "refused: \"%s\": public key is not an RSA-1024 SPKI", safe);
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "public key is not an RSA-1024 SPKI");
		return;
	}
	rsa_public_free(pub);
	handlers_new_client_id(id);
	r = db_client_register_v4(c->env->db, m.name, id, m.public_key, sizeof(m.public_key),
	    c->fingerprint);
	if (r == SD_ERR_BOUND) {
		conn_log(c, "register", "refused: client key %.*s is bound to an account already",
		    HANDLERS_V4_FP_SHORT, c->fingerprint);
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "certificate already bound to an account");
	} else if (r == SD_ERR_EXISTS) {
		conn_log(c, "register", "refused: name \"%s\" taken", safe);
		handlers_v4_error(c, V4_REASON_NAME_TAKEN, "name taken");
	} else if (r != 0) {
		conn_log(c, "register", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->env->db));
		handlers_v4_error(c, V4_REASON_STORAGE, "database failure");
	} else {
		welcome(c, id, m.name, "register");
	}
}

/* 841: a challenge only the holder of the account's version-3 private key can answer. */
static void
handle_link(struct conn *c, const struct frame_event *ev)
{
	struct msg4_link m;
	struct db_client cl;
	struct rsa_public *pub = NULL;
	uint8_t enc[V4_CHALLENGE_SIZE];
	char safe[LOG_NAME_MAX + 4];
	const char *why = NULL;
	int r;

	forget_challenge(c);  /* a new LINK replaces any challenge not yet answered */
	memset(&cl, 0, sizeof(cl));
	if ((r = msg4_link_decode(ev->data, ev->len, &m)) != 0) {
		conn_log(c, "link", "refused: %s", sd_strerror(r));
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "malformed LINK");
		return;
	}
	log_sanitize(m.name, safe, sizeof(safe));
	r = db_client_by_name(c->env->db, m.name, &cl);
	if (r != 0 && r != SD_ERR_NOT_FOUND) {
		conn_log(c, "link", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->env->db));
		handlers_v4_error(c, V4_REASON_STORAGE, "database failure");
		goto out;
	}
	if (r == SD_ERR_NOT_FOUND)
		why = "unknown name";
	else if (memcmp(cl.id, m.id, CLIENT_ID_SIZE) != 0)
		why = "ID does not match the name";
	else if (!cl.has_public_key || rsa_public_from_spki(cl.public_key,
	    cl.public_key_len, &pub) != 0)
		why = "no usable version-3 public key stored";
	if (why != NULL) {
		conn_log_as(c, m.id, m.name, "link", "refused: \"%s\": %s: ERROR 3", safe, why);
		handlers_v4_error(c, V4_REASON_NOT_REGISTERED, "no such account");
		goto out;
	}
	crypto_random(c->challenge_nonce, sizeof(c->challenge_nonce));
	if ((r = rsa_oaep_wrap(pub, c->challenge_nonce, enc)) != 0) {
		forget_challenge(c);
		conn_log_as(c, m.id, m.name, "link", "refused: wrapping the nonce: %s",
		    sd_strerror(r));
		handlers_v4_error(c, V4_REASON_NOT_REGISTERED, "the account's key cannot be used");
		goto out;
	}
	memcpy(c->challenge_id, cl.id, CLIENT_ID_SIZE);
	c->challenge_set = 1;
	conn_log_as(c, cl.id, cl.name, "link", "ok: 1612 CHALLENGE for client key %.*s",
	    HANDLERS_V4_FP_SHORT, c->fingerprint);
	conn_queued(c, msg4_put_challenge(&c->out, enc));
out:
	rsa_public_free(pub);
	crypto_wipe(&cl, sizeof(cl));
}

/* 842: the nonce of this connection's last CHALLENGE, once; then the certificate is bound to
 * that account (replacing the account's earlier binding). */
static void
handle_prove(struct conn *c, const struct frame_event *ev)
{
	uint8_t got[V4_NONCE_SIZE], id[CLIENT_ID_SIZE];
	struct db_client cl;
	int r, had, same;

	memset(&cl, 0, sizeof(cl));
	r = msg4_prove_decode(ev->data, ev->len, got);
	had = c->challenge_set;
	same = had && r == 0 && same_secret(got, c->challenge_nonce, sizeof(got));
	memcpy(id, c->challenge_id, sizeof(id));
	forget_challenge(c);  /* one PROVE per CHALLENGE, whatever it says */
	crypto_wipe(got, sizeof(got));
	if (r != 0) {
		conn_log(c, "prove", "refused: %s", sd_strerror(r));
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "malformed PROVE");
		return;
	}
	if (!same) {
		conn_log(c, "prove", "refused: %s: ERROR 4", had ? "wrong nonce" :
		    "no challenge outstanding on this connection");
		handlers_v4_error(c, V4_REASON_NOT_PROVEN, had ? "wrong nonce" : "no challenge");
		return;
	}
	if ((r = db_client_by_id(c->env->db, id, &cl)) == 0)
		r = db_client_bind_fingerprint(c->env->db, id, c->fingerprint);
	if (r == SD_ERR_NOT_FOUND) {
		conn_log_as(c, id, NULL, "prove", "refused: the account is gone: ERROR 3");
		handlers_v4_error(c, V4_REASON_NOT_REGISTERED, "no such account");
	} else if (r == SD_ERR_BOUND) {
		conn_log_as(c, id, cl.name, "prove", "refused: client key %.*s is bound to another "
		    "account", HANDLERS_V4_FP_SHORT, c->fingerprint);
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "certificate bound to another account");
	} else if (r != 0) {
		conn_log(c, "prove", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->env->db));
		handlers_v4_error(c, V4_REASON_STORAGE, "database failure");
	} else {
		welcome(c, cl.id, cl.name, "link");
	}
	crypto_wipe(&cl, sizeof(cl));
}

/* 843: the account of this certificate, if any. After WELCOME the connection's account,
 * which no later binding changes (see identity_fixed). */
static void
handle_whoami(struct conn *c, const struct frame_event *ev)
{
	struct db_client cl;
	int r;

	if ((r = msg4_empty_decode(ev->data, ev->len)) != 0) {
		conn_log(c, "whoami", "refused: %s", sd_strerror(r));
		handlers_v4_error(c, V4_REASON_BAD_REQUEST, "malformed WHOAMI");
		return;
	}
	if (c->known) {
		conn_log(c, "whoami", "ok: 1610 WELCOME (this connection's account)");
		conn_queued(c, msg4_put_welcome(&c->out, c->id, c->name));
		return;
	}
	memset(&cl, 0, sizeof(cl));
	r = db_client_by_fingerprint(c->env->db, c->fingerprint, &cl);
	if (r == SD_ERR_NOT_FOUND) {
		conn_log(c, "whoami", "client key %.*s unknown: 1611 UNKNOWN", HANDLERS_V4_FP_SHORT,
		    c->fingerprint);
		conn_queued(c, msg4_put_empty_response(&c->out, RESP4_UNKNOWN));
	} else if (r != 0) {
		conn_log(c, "whoami", "failed: %s (%s)", sd_strerror(r), db_errmsg(c->env->db));
		handlers_v4_error(c, V4_REASON_STORAGE, "database failure");
	} else {
		conn_touch(c, cl.id);
		welcome(c, cl.id, cl.name, "whoami");
	}
	crypto_wipe(&cl, sizeof(cl));
}

/* A connection's account is the one its WELCOME named, for the rest of the connection: its
 * upload, download and staged state belong to that account, so REGISTER and LINK after
 * WELCOME get ERROR 1 (the certificate is bound to an account already, as SPEC-v4.md answers
 * a REGISTER of a bound certificate) instead of changing who the connection is; a PROVE then
 * finds no challenge (WELCOME spends it): ERROR 4. Our client sends them only before
 * WELCOME. 1 when code was refused. */
static int
identity_fixed(struct conn *c, uint16_t code)
{
	if (!c->known || (code != REQ4_REGISTER && code != REQ4_LINK))
		return 0;
	conn_log(c, msg4_code_name(code), "refused: after WELCOME (the connection has its "
	    "account): ERROR 1");
	handlers_v4_error(c, V4_REASON_BAD_REQUEST, "this connection has an account already");
	return 1;
}

/* --max-registrations-per-minute: REGISTER and LINK (version 4's 825 and 827: a new account,
 * an RSA operation) take a token of the source address's bucket, shared with version 3.
 * Over the limit: ERROR 8 (busy: try later), a log line, and the connection closes, as
 * version 3 answers 1607 and closes. 1 allowed. */
static int
registration_allowed(struct conn *c)
{
	char addr[LIMITS_ADDR_MAX];
	unsigned max = c->env->cfg->max_registrations;

	limits_peer_address(c->peer, addr);
	if (limits_registration_allow(addr, max, c->env->now_ms))
		return 1;
	conn_log_end(c, "limit", "more than %u registrations and reconnects a minute from %s "
	    "(--max-registrations-per-minute): ERROR 8; closing", max, addr);
	handlers_v4_fail(c, V4_REASON_BUSY, "too many registrations from this address; try later");
	return 0;
}

void
handlers_v4_message(struct conn *c, const struct frame_event *ev)
{
	uint16_t code = ev->header->code;

	if (ev->header->version != PROTO_VERSION_4 || !msg4_is_request_code(code)) {
		conn_log(c, "request", "refused: version %u code %u inside TLS; closing",
		    (unsigned)ev->header->version, (unsigned)code);
		handlers_v4_fail(c, V4_REASON_BAD_REQUEST, "not a version-4 request");
		return;
	}
	if (identity_fixed(c, code))
		return;
	if ((code == REQ4_REGISTER || code == REQ4_LINK) && !registration_allowed(c))
		return;
	switch (code) {
	case REQ4_REGISTER:
		handle_register(c, ev);
		return;
	case REQ4_LINK:
		handle_link(c, ev);
		return;
	case REQ4_PROVE:
		handle_prove(c, ev);
		return;
	case REQ4_WHOAMI:
		handle_whoami(c, ev);
		return;
	}
	if (!c->known) {
		conn_log(c, msg4_code_name(code), "refused: before WELCOME: ERROR 3");
		if (code == REQ4_PUT_DATA)
			handlers_v4_fail(c, V4_REASON_NOT_REGISTERED, "REGISTER or LINK first");
		else
			handlers_v4_error(c, V4_REASON_NOT_REGISTERED, "REGISTER or LINK first");
		return;
	}
	/* The transfers (SPEC-v4.md "Uploads", "Listing, downloads, deletion"), after WELCOME
	 * only: xfer.h answers every other request code msg4_is_request_code() admits (850-853,
	 * 860-862, also an 851 shorter than its head); 851's streamed events go to put.c from
	 * handlers_v4_stream(). */
	if (!xfer_message(c, ev))
		abort();  /* a request code neither here nor in xfer.c: a broken invariant */
}

void
handlers_v4_stream(struct conn *c, const struct frame_event *ev)
{
	/* Only 851 streams (frame.h); a refusal of its head closes the connection, so its data
	 * never arrives here. */
	switch (ev->type) {
	case FRAME_STREAM_DATA:
		put_data_slice(c, ev);
		return;
	case FRAME_STREAM_END:
		put_data_end(c, ev);
		return;
	default:
		break;
	}
	if (ev->header->version != PROTO_VERSION_4) {
		conn_log(c, "put data", "refused: version %u inside TLS; closing",
		    (unsigned)ev->header->version);
		handlers_v4_fail(c, V4_REASON_BAD_REQUEST, "not a version-4 request");
		return;
	}
	if (!c->known) {
		conn_log(c, "put data", "refused: before WELCOME: ERROR 3; closing");
		handlers_v4_fail(c, V4_REASON_NOT_REGISTERED, "REGISTER or LINK first");
		return;
	}
	put_data_start(c, ev);
}

void
handlers_v4_outside_tls(struct conn *c, const struct frame_event *ev)
{
	conn_log(c, "request", "refused: version-4 code %u outside TLS: 1607; closing",
	    (unsigned)ev->header->code);
	conn_queued(c, msg_put_empty_response(&c->out, RESP_ERROR));
	conn_close_after_reply(c);
}
