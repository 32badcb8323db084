/* v4.c: the client's version-4 session: identities (me.info, me.key), pinning
 * (known_servers, --server-key), the TLS connection and the account flows of SPEC-v4.md 3
 * "Accounts". The commands themselves are in commands.c. */
#include "v4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../protocol/crypto.h"
#include "../protocol/rsa.h"
#include "../protocol/err.h"
#include "../protocol/hex.h"
#include "../protocol/text.h"
#include "identity.h"
#include "log.h"

/* ---- requests and replies ---- */

int
v4_unexpected(uint16_t code, const char *what)
{
	log_fatal("%s: unexpected reply %u (%s)", what, code, msg4_code_name(code));
	return CX_SERVER;
}

/* A failed read or write: the connection is gone (retryable) or the server broke framing. */
static int
io_failure(struct v4_client *c, int r, const char *what)
{
	c->transient = 0;
	if (r == SD_ERR_BAD_FIELD || r == SD_ERR_UNKNOWN_CODE || r == SD_ERR_TOO_LARGE) {
		log_fatal("%s: the server broke the version-4 framing (%s)", what, sd_strerror(r));
		v4_disconnect(c);
		return CX_SERVER;
	}
	if (r == SD_ERR_IO && errno == ETIMEDOUT)
		log_warn("%s: the server sent nothing for %d.%03d s (read timeout)", what,
		    c->cfg->timeout_ms / 1000, c->cfg->timeout_ms % 1000);
	else if (r == SD_ERR_IO)
		log_warn("%s: connection lost (%s)", what, strerror(errno));
	else
		log_warn("%s: connection lost (%s)", what, sd_strerror(r));
	v4_disconnect(c);
	return CX_CONNECTION;
}

int
v4_read(struct v4_client *c, struct v4_reply *rep, const char *what)
{
	int r;

	memset(rep, 0, sizeof(*rep));
	if (c->conn == NULL)
		return CX_CONNECTION;
	if ((r = v4conn_read_response(c->conn, &rep->code, &rep->p, &rep->n)) != 0)
		return io_failure(c, r, what);
	log_verbose("<- %u %s (%zu payload bytes)", rep->code, msg4_code_name(rep->code),
	    rep->n);
	c->transient = 0;
	if (rep->code == RESP4_ERROR)
		return v4_transient_error(c, rep, what);
	return 0;
}

int
v4_transient_error(struct v4_client *c, const struct v4_reply *rep, const char *what)
{
	struct msg4_error e;

	if (msg4_error_decode(rep->p, rep->n, &e) != 0 ||
	    (e.reason != V4_REASON_BUSY && e.reason != V4_REASON_STORAGE))
		return 0;
	(void)v4_error_reply(c, rep, what);
	c->transient = e.reason;
	v4_disconnect(c);
	return CX_CONNECTION;
}

int
v4_call(struct v4_client *c, uint16_t code, const struct buf *req, struct v4_reply *rep,
    const char *what)
{
	int r;

	memset(rep, 0, sizeof(*rep));
	if (c->conn == NULL)
		return CX_CONNECTION;
	log_verbose("-> %u %s (%zu payload bytes)", code, msg4_code_name(code),
	    buf_len(req) - REQ_HEADER_SIZE);
	if ((r = v4conn_write(c->conn, buf_ptr(req), buf_len(req))) != 0)
		return io_failure(c, r, what);
	return v4_read(c, rep, what);
}

unsigned
v4_error_reply(struct v4_client *c, const struct v4_reply *rep, const char *what)
{
	char msg[TEXT_ESCAPE_SIZE(V4_MESSAGE_BUF)];

	if (msg4_error_decode(rep->p, rep->n, &c->last_error) != 0) {
		log_error("%s: the server answered ERROR (malformed payload)", what);
		memset(&c->last_error, 0, sizeof(c->last_error));
		return 0;
	}
	/* The message is the server's text: through the display sanitiser (C0, DEL, C1). */
	text_escape(c->last_error.message, msg, sizeof(msg));
	log_error("%s: the server answered ERROR %u (%s)%s%s", what, c->last_error.reason,
	    msg4_reason_name(c->last_error.reason), msg[0] != '\0' ? ": " : "", msg);
	return c->last_error.reason;
}

void
v4_backoff(unsigned attempt)
{
	long long ms = V4_BACKOFF_FIRST_MS;
	struct timespec ts;
	unsigned i;

	for (i = 1; i < attempt && ms < V4_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > V4_BACKOFF_MAX_MS)
		ms = V4_BACKOFF_MAX_MS;
	log_note("reconnecting in %lld.%lld s (attempt %u)", ms / 1000, (ms % 1000) / 100,
	    attempt);
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- identities ---- */

/* me.key, written once the server knows our certificate. */
static int
save_identity(struct v4_client *c)
{
	char why[WHY_MAX];
	char fp[TLS_FP_TEXT_SIZE];

	if (!c->ident_unsaved)
		return 0;
	if (identity_save(c->cfg->key_path, c->ident, why, sizeof(why)) != 0) {
		log_fatal("%s", why);
		return CX_ME_INFO;
	}
	c->ident_unsaved = 0;
	if (tls_identity_fingerprint(c->ident, fp) == 0)
		log_note("wrote %s (our key %s)", c->cfg->key_path, fp);
	return 0;
}

/* 1 if the two RSA keys differ (by their public keys). */
static int
keys_differ(const struct rsa_private *a, const struct rsa_private *b)
{
	uint8_t sa[PUBLIC_KEY_SIZE], sb[PUBLIC_KEY_SIZE];

	if (me_info_key_spki(a, sa, NULL, 0) != 0 || me_info_key_spki(b, sb, NULL, 0) != 0)
		return 1;
	return memcmp(sa, sb, sizeof(sa)) != 0;
}

/* Loads me.info and me.key and makes the TLS credentials; a missing me.key (or me.info)
 * means a new Ed25519 identity. A priv.key that is not me.info's key, or me.key and priv.key
 * without me.info, are what a REGISTER whose reply was lost leaves (do_register): that key
 * becomes c->pending, and do_account asks the server before registering again. */
static int
load_identities(struct v4_client *c)
{
	const struct v4_config *cfg = c->cfg;
	struct rsa_private *priv = NULL;
	char why[WHY_MAX];
	int r;

	r = me_info_load(cfg->me_path, cfg->priv_path, &c->me, why, sizeof(why));
	if (r == 0) {
		c->have_me = 1;
		if (strcmp(c->me.name, cfg->name) != 0)
			log_warn("%s holds the name '%s'; the account is that one, not '%s' from "
			    "transfer.info", cfg->me_path, c->me.name, cfg->name);
	} else if (r != SD_ERR_NOT_FOUND) {
		log_fatal("%s (fix or remove it to register anew)", why);
		return CX_ME_INFO;
	}
	if (c->have_me) {
		r = identity_load(cfg->key_path, &c->ident, why, sizeof(why));
		if (r != 0 && r != SD_ERR_NOT_FOUND) {
			log_fatal("%s (remove it to make a new key; the server then needs LINK, "
			    "which me.info proves)", why);
			return CX_ME_INFO;
		}
		if (c->ident != NULL && !c->me.key_from_priv_key &&
		    me_info_load_key(cfg->priv_path, &priv, NULL, 0) == 0 &&
		    keys_differ(priv, c->me.key)) {
			c->pending = priv;
			priv = NULL;
		}
	} else if (identity_load(cfg->key_path, &c->ident, NULL, 0) == 0 &&
	    me_info_load_key(cfg->priv_path, &c->pending, NULL, 0) == 0) {
		log_note("%s and %s without %s: an earlier registration may have reached the "
		    "server; asking it", cfg->key_path, cfg->priv_path, cfg->me_path);
	} else {
		/* Without me.info a new account is made, with new keys. */
		tls_identity_free(c->ident);
		c->ident = NULL;
		rsa_private_free(c->pending);
		c->pending = NULL;
	}
	rsa_private_free(priv);
	if (c->ident == NULL) {
		if (identity_generate(c->have_me ? c->me.name : cfg->name, &c->ident, why,
		    sizeof(why)) != 0) {
			log_fatal("%s", why);
			return CX_ME_INFO;
		}
		c->ident_unsaved = 1;
	}
	if ((r = tls_creds_new(c->ident, &c->creds)) != 0) {
		log_fatal("cannot use the key of %s: %s", cfg->key_path, sd_strerror(r));
		return CX_ME_INFO;
	}
	return 0;
}

/* The pin for this server: --server-key, or known_servers' line. */
static int
load_pin(struct v4_client *c)
{
	const struct v4_config *cfg = c->cfg;
	struct known_result kr;
	char why[WHY_MAX];

	if (known_servers_key(cfg->host, cfg->port, c->server_key, sizeof(c->server_key)) != 0) {
		log_fatal("the server address %s is too long", cfg->host);
		return CX_TRANSFER_INFO;
	}
	if (cfg->server_key != NULL) {
		snprintf(c->pinned, sizeof(c->pinned), "%s", cfg->server_key);
		c->pinned_by_option = 1;
		return 0;
	}
	if (known_servers_lookup(cfg->known_path, c->server_key, NULL, &kr, why,
	    sizeof(why)) != 0) {
		log_fatal("%s", why);
		return CX_ME_INFO;
	}
	if (kr.verdict != KNOWN_NONE)
		snprintf(c->pinned, sizeof(c->pinned), "%s", kr.fingerprint);
	return 0;
}

static int
key_changed(struct v4_client *c, const char *presented)
{
	struct known_result kr;

	if (c->pinned_by_option) {
		log_fatal("the server %s presented the key %s, not %s given by --server-key; "
		    "nothing was sent", c->server_key, presented[0] ? presented : "(none)",
		    c->pinned);
		return CX_SERVER_KEY;
	}
	memset(&kr, 0, sizeof(kr));
	(void)known_servers_lookup(c->cfg->known_path, c->server_key, NULL, &kr, NULL, 0);
	log_fatal("THE SERVER'S KEY HAS CHANGED: %s presented %s, but %s line %u pins %s. "
	    "Someone may be intercepting the connection, or the server got a new key. Nothing "
	    "was sent. If the change is expected, remove the line '%s %s' from %s and run again",
	    c->server_key, presented[0] ? presented : "(none)", c->cfg->known_path, kr.line,
	    c->pinned, c->server_key, c->pinned, c->cfg->known_path);
	return CX_SERVER_KEY;
}

/* ---- accounts ---- */

/* Forgets a pending key that turned out not to be needed, and puts me.info's key back into
 * priv.key (where do_register had put the pending one). */
static void
drop_pending(struct v4_client *c)
{
	char why[WHY_MAX];

	if (c->pending == NULL)
		return;
	rsa_private_free(c->pending);
	c->pending = NULL;
	if (c->have_me && !c->me.key_from_priv_key &&
	    me_info_write_key(c->cfg->priv_path, c->me.key, why, sizeof(why)) != 0)
		log_warn("%s", why);
}

/* The server welcomed the pending registration (w): me.info and priv.key get its ID and the
 * pending key. */
static int
adopt_pending(struct v4_client *c, const struct msg4_welcome *w)
{
	const struct v4_config *cfg = c->cfg;
	char why[WHY_MAX], hex[2 * CLIENT_ID_SIZE + 1];
	char shown[TEXT_ESCAPE_SIZE(V4_NAME_BUF)];

	text_escape(w->name, shown, sizeof(shown));  /* the server's text */
	if (text_name_check(w->name, NULL) != 0) {
		log_fatal("the server welcomed us as '%s', which is no valid name for %s", shown,
		    cfg->me_path);
		return CX_SERVER;
	}
	if (me_info_write(cfg->me_path, cfg->priv_path, w->name, w->id, c->pending, why,
	    sizeof(why)) != 0) {
		log_fatal("%s (the server registered '%s'; the next run writes it again)", why,
		    shown);
		return CX_ME_INFO;
	}
	me_info_clear(&c->me);
	snprintf(c->me.name, sizeof(c->me.name), "%s", w->name);
	memcpy(c->me.id, w->id, CLIENT_ID_SIZE);
	c->me.key = c->pending;
	c->pending = NULL;
	c->have_me = 1;
	memcpy(c->id, w->id, CLIENT_ID_SIZE);
	hex_encode(w->id, CLIENT_ID_SIZE, hex);
	log_note("registered '%s' (ID %s); wrote %s and %s", shown, hex, cfg->me_path,
	    cfg->priv_path);
	return save_identity(c);
}

/* Registers the name with the pending RSA key (made here, if there is none, and written to
 * priv.key with me.key before REGISTER is sent) and writes me.info on WELCOME. */
static int
do_register(struct v4_client *c)
{
	const struct v4_config *cfg = c->cfg;
	uint8_t spki[PUBLIC_KEY_SIZE];
	uint8_t mem[REQ_HEADER_SIZE + V4_REGISTER_PAYLOAD_MAX];
	struct msg4_welcome w;
	struct v4_reply rep;
	struct buf req;
	char why[WHY_MAX];
	unsigned reason;
	int r;

	if (c->pending == NULL) {
		if ((r = me_info_new_key(&c->pending, spki, why, sizeof(why))) != 0) {
			log_fatal("%s", why);
			return CX_ME_INFO;
		}
		/* Durable before REGISTER: a lost reply must not lose the account. An old
		 * me.info taking its key from priv.key keeps it (then the key stays in memory). */
		if ((r = save_identity(c)) != 0)
			return r;
		if ((!c->have_me || !c->me.key_from_priv_key) &&
		    me_info_write_key(cfg->priv_path, c->pending, why, sizeof(why)) != 0) {
			log_fatal("%s", why);
			return CX_ME_INFO;
		}
	} else if (me_info_key_spki(c->pending, spki, why, sizeof(why)) != 0) {
		log_fatal("%s", why);
		return CX_ME_INFO;
	}
	buf_fixed(&req, mem, sizeof(mem));
	if ((r = msg4_put_register(&req, spki, cfg->name)) != 0) {
		log_fatal("cannot encode REGISTER for '%s': %s", cfg->name, sd_strerror(r));
		return CX_TRANSFER_INFO;
	}
	if ((r = v4_call(c, REQ4_REGISTER, &req, &rep, "registering (REGISTER)")) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		reason = v4_error_reply(c, &rep, "registering (REGISTER)");
		if (reason == V4_REASON_NAME_TAKEN) {
			log_fatal("the server refused to register '%s': the name is taken",
			    cfg->name);
			/* Refused for certain: the keys written for it are of no use. */
			if (!c->have_me) {
				(void)unlink(cfg->key_path);
				(void)unlink(cfg->priv_path);
				c->ident_unsaved = 1;
			}
			drop_pending(c);
			return CX_REFUSED;
		}
		log_fatal("the server refused to register '%s'", cfg->name);
		return CX_SERVER;
	}
	if (rep.code != RESP4_WELCOME || msg4_welcome_decode(rep.p, rep.n, &w) != 0)
		return v4_unexpected(rep.code, "registering (REGISTER)");
	return adopt_pending(c, &w);
}

/* LINK (me.info's name and ID) and PROVE with the nonce unwrapped by me.info's RSA key.
 * *unknown = 1 when the server no longer knows the account (ERROR 3). */
static int
do_link(struct v4_client *c, int *unknown)
{
	uint8_t mem[REQ_HEADER_SIZE + V4_LINK_PAYLOAD_MAX];
	uint8_t enc[V4_CHALLENGE_SIZE], nonce[V4_NONCE_SIZE];
	struct msg4_welcome w;
	struct v4_reply rep;
	struct buf req;
	unsigned reason;
	int r;

	*unknown = 0;
	buf_fixed(&req, mem, sizeof(mem));
	if ((r = msg4_put_link(&req, c->me.name, c->me.id)) != 0) {
		log_fatal("cannot encode LINK for '%s': %s", c->me.name, sd_strerror(r));
		return CX_ME_INFO;
	}
	if ((r = v4_call(c, REQ4_LINK, &req, &rep, "linking me.info's account (LINK)")) != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		reason = v4_error_reply(c, &rep, "linking me.info's account (LINK)");
		if (reason == V4_REASON_NOT_REGISTERED) {
			*unknown = 1;
			return 0;
		}
		log_fatal("the server refused to link the account of %s", c->cfg->me_path);
		return CX_SERVER;
	}
	if (rep.code != RESP4_CHALLENGE || msg4_challenge_decode(rep.p, rep.n, enc) != 0)
		return v4_unexpected(rep.code, "linking (LINK)");
	/* The nonce is wrapped exactly as version 3 wraps AES keys (32 bytes, RSA-OAEP). */
	if (rsa_oaep_unwrap(c->me.key, enc, nonce) != 0) {
		log_fatal("the server's CHALLENGE does not unwrap with the key in %s",
		    c->cfg->me_path);
		return CX_SERVER;
	}
	buf_fixed(&req, mem, sizeof(mem));
	r = msg4_put_prove(&req, nonce);
	crypto_wipe(nonce, sizeof(nonce));
	if (r != 0)
		return CX_SERVER;
	r = v4_call(c, REQ4_PROVE, &req, &rep, "proving me.info's key (PROVE)");
	crypto_wipe(mem, sizeof(mem));
	if (r != 0)
		return r;
	if (rep.code == RESP4_ERROR) {
		(void)v4_error_reply(c, &rep, "proving me.info's key (PROVE)");
		log_fatal("the server did not accept the proof of the key in %s", c->cfg->me_path);
		return CX_SERVER;
	}
	if (rep.code != RESP4_WELCOME || msg4_welcome_decode(rep.p, rep.n, &w) != 0)
		return v4_unexpected(rep.code, "proving (PROVE)");
	memcpy(c->id, w.id, CLIENT_ID_SIZE);
	drop_pending(c);
	log_note("linked this key to the account '%s' of %s", c->me.name, c->cfg->me_path);
	return save_identity(c);
}

static int
do_account(struct v4_client *c)
{
	uint8_t mem[REQ_HEADER_SIZE];
	struct msg4_welcome w;
	struct v4_reply rep;
	struct buf req;
	char ours[2 * CLIENT_ID_SIZE + 1], theirs[2 * CLIENT_ID_SIZE + 1];
	char shown[TEXT_ESCAPE_SIZE(V4_NAME_BUF)];
	int r, unknown;

	if (!c->have_me && c->pending == NULL)
		return do_register(c);
	buf_fixed(&req, mem, sizeof(mem));
	if (msg4_put_empty_request(&req, REQ4_WHOAMI) != 0)
		return CX_SERVER;
	if ((r = v4_call(c, REQ4_WHOAMI, &req, &rep, "asking for the account (WHOAMI)")) != 0)
		return r;
	if (rep.code == RESP4_WELCOME) {
		if (msg4_welcome_decode(rep.p, rep.n, &w) != 0)
			return v4_unexpected(rep.code, "WHOAMI");
		if (c->pending != NULL && (!c->have_me ||
		    memcmp(w.id, c->me.id, CLIENT_ID_SIZE) != 0)) {
			log_note("the server holds the registration whose reply was lost");
			return adopt_pending(c, &w);
		}
		memcpy(c->id, w.id, CLIENT_ID_SIZE);
		if (memcmp(w.id, c->me.id, CLIENT_ID_SIZE) != 0) {
			hex_encode(c->me.id, CLIENT_ID_SIZE, ours);
			hex_encode(w.id, CLIENT_ID_SIZE, theirs);
			log_fatal("%s belongs to the account %s on the server, but %s holds the "
			    "account %s: refusing to act for another account. If %s was copied "
			    "from elsewhere, remove it (a new key is then linked to the account of "
			    "%s)", c->cfg->key_path, theirs, c->cfg->me_path, ours, c->cfg->key_path,
			    c->cfg->me_path);
			v4_disconnect(c);
			return CX_ME_INFO;
		}
		drop_pending(c);
		text_escape(w.name, shown, sizeof(shown));  /* the server's text */
		log_verbose("welcome back, '%s'", shown);
		return save_identity(c);
	}
	if (rep.code != RESP4_UNKNOWN || msg4_empty_decode(rep.p, rep.n) != 0)
		return v4_unexpected(rep.code, "asking for the account (WHOAMI)");
	if (!c->have_me)
		return do_register(c);   /* the pending REGISTER never reached the server */
	if ((r = do_link(c, &unknown)) != 0)
		return r;
	if (!unknown)
		return 0;
	log_note("the server does not know the account of %s; registering anew", c->cfg->me_path);
	return do_register(c);
}

/* ---- connections ---- */

void
v4_disconnect(struct v4_client *c)
{
	v4conn_close(c->conn);
	c->conn = NULL;
}

/* --protocol auto's first TLS attempt to a server not pinned waits this long (at most
 * --timeout) for the handshake: a version-3 server may neither answer a ClientHello nor close,
 * waiting for the rest of what it took for a request, and the fallback should not wait the
 * whole --timeout (30 s). A TLS server answers a ClientHello at once. */
#define V4_PROBE_HANDSHAKE_MS 5000

/* The first connection of a run, before any fallback decision, reports a server that does
 * not speak TLS as CX_OK with *not_tls = 1. probe: the handshake deadline is
 * V4_PROBE_HANDSHAKE_MS. */
static int
open_conn(struct v4_client *c, int *not_tls, int probe)
{
	const struct v4_config *cfg = c->cfg;
	struct v4conn_config cc;
	struct known_result kr;
	char presented[TLS_FP_TEXT_SIZE], why[WHY_MAX], desc[160], ours[TLS_FP_TEXT_SIZE];
	int r, tcp = 0;

	*not_tls = 0;
	memset(&cc, 0, sizeof(cc));
	cc.host = cfg->host;
	cc.port = cfg->port;
	cc.connect_timeout_ms = cfg->connect_timeout_ms;
	cc.timeout_ms = cfg->timeout_ms;
	if (probe && cfg->timeout_ms > V4_PROBE_HANDSHAKE_MS)
		cc.handshake_timeout_ms = V4_PROBE_HANDSHAKE_MS;
	cc.creds = c->creds;
	cc.expected_fp = c->pinned[0] != '\0' ? c->pinned : NULL;
	why[0] = '\0';
	r = v4conn_open(&cc, &c->conn, presented, &tcp, why, sizeof(why));
	if (r == SD_ERR_PEER_KEY && !c->pinned_by_option && strcmp(c->pinned, presented) != 0 &&
	    known_servers_lookup(cfg->known_path, c->server_key, presented, &kr, NULL, 0) == 0 &&
	    kr.verdict == KNOWN_MATCH) {
		/* The handshake expects one key, the first line for this server; another line
		 * pins the one presented (a rotated key the user added): the same rule as
		 * known_servers_parse, a match anywhere wins. Nothing was sent; connect again
		 * expecting that one. */
		log_verbose("%s presented %s, pinned by %s line %u: connecting again with that "
		    "key", c->server_key, presented, cfg->known_path, kr.line);
		snprintf(c->pinned, sizeof(c->pinned), "%s", presented);
		cc.expected_fp = c->pinned;
		r = v4conn_open(&cc, &c->conn, presented, &tcp, why, sizeof(why));
	}
	if (r == SD_ERR_PEER_KEY)
		return key_changed(c, presented);
	if (r == SD_ERR_NOT_TLS || r == SD_ERR_EOF) {
		*not_tls = 1;
		return CX_OK;
	}
	if (r == SD_ERR_IO && !tcp) {
		log_fatal("%s", why);
		return CX_CONNECT;
	}
	if (r == SD_ERR_IO) {
		log_warn("%s", why);
		return CX_CONNECTION;
	}
	if (r != 0) {
		log_fatal("%s", why);
		return CX_SERVER;
	}
	v4conn_describe(c->conn, desc, sizeof(desc));
	log_verbose("connected to %s port %s: %s", cfg->host, cfg->port, desc);
	if (tls_identity_fingerprint(c->ident, ours) == 0)
		log_verbose("our key %s", ours);
	if (c->pinned[0] != '\0') {
		log_verbose("server key %s (pinned by %s)", v4conn_peer_fingerprint(c->conn),
		    c->pinned_by_option ? "--server-key" : cfg->known_path);
		return 0;
	}
	/* Trust on first use: record the key before anything else goes to this server. A
	 * concurrent run may have recorded one meanwhile: it must match. */
	snprintf(presented, sizeof(presented), "%s", v4conn_peer_fingerprint(c->conn));
	if (known_servers_lookup(cfg->known_path, c->server_key, presented, &kr, why,
	    sizeof(why)) != 0) {
		log_fatal("%s", why);
		v4_disconnect(c);
		return CX_ME_INFO;
	}
	if (kr.verdict == KNOWN_MISMATCH) {
		snprintf(c->pinned, sizeof(c->pinned), "%s", kr.fingerprint);
		v4_disconnect(c);
		return key_changed(c, presented);
	}
	if (kr.verdict == KNOWN_NONE &&
	    known_servers_append(cfg->known_path, c->server_key, presented, why,
	    sizeof(why)) != 0) {
		log_fatal("%s", why);
		v4_disconnect(c);
		return CX_ME_INFO;
	}
	snprintf(c->pinned, sizeof(c->pinned), "%s", presented);
	log_note("first contact with %s: its key %s is now pinned in %s", c->server_key,
	    presented, cfg->known_path);
	return 0;
}

int
v4_connect(struct v4_client *c)
{
	int r, not_tls;

	v4_disconnect(c);
	if ((r = open_conn(c, &not_tls, 0)) != 0)
		return r;
	if (not_tls) {
		log_warn("%s no longer answers TLS", c->server_key);
		return CX_CONNECTION;
	}
	c->connected_once = 1;
	if ((r = do_account(c)) != 0)
		v4_disconnect(c);
	return r;
}

int
v4_run(const struct v4_config *cfg, int allow_fallback, int *not_v4)
{
	struct v4_client *c;
	int r, not_tls, probe;

	*not_v4 = 0;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_fatal("out of memory");
		return CX_FILE;
	}
	c->cfg = cfg;
	if ((r = load_pin(c)) != 0 || (r = load_identities(c)) != 0)
		goto out;
	/* Only a fallback needs the short deadline: without one (--protocol 4) or to a pinned
	 * server (no fallback either way) the handshake has the whole --timeout. */
	probe = allow_fallback && c->pinned[0] == '\0';
	r = open_conn(c, &not_tls, probe);
	if (r == CX_CONNECTION && c->conn == NULL && probe) {
		/* The handshake timed out: a server that does not speak TLS may be waiting for
		 * the rest of what it took for a version-3 request. */
		not_tls = 1;
		r = CX_OK;
	}
	/* Otherwise a handshake that timed out or was reset is a lost connection like any
	 * other (the command reconnects), not a refusal to speak TLS. */
	if (r != 0 && r != CX_CONNECTION)
		goto out;
	if (not_tls) {
		if (c->pinned[0] != '\0') {
			log_fatal("%s did not answer TLS, but %s pins its version-4 key %s: refusing "
			    "to fall back to version 3 (a downgrade). Use --protocol 3 to speak "
			    "version 3 to it anyway", c->server_key, c->pinned_by_option ?
			    "--server-key" : cfg->known_path, c->pinned);
			r = CX_SERVER_KEY;
		} else if (!allow_fallback) {
			log_fatal("%s does not speak version 4 (TLS)", c->server_key);
			r = CX_SERVER;
		} else {
			log_verbose("%s does not speak version 4; using version 3", c->server_key);
			*not_v4 = 1;
			r = CX_OK;
		}
		goto out;
	}
	c->connected_once = 1;
	/* A connection lost here is the command's to retry (it reconnects when conn is NULL). */
	if (c->conn != NULL && (r = do_account(c)) != 0 && r != CX_CONNECTION)
		goto out;
	switch (cfg->command) {
	case CMD_SEND: r = v4_cmd_send(c); break;
	case CMD_LIST: r = v4_cmd_list(c); break;
	case CMD_GET: r = v4_cmd_get(c); break;
	case CMD_RM: r = v4_cmd_rm(c); break;
	default: r = CX_USAGE; break;
	}
out:
	v4_disconnect(c);
	tls_creds_free(c->creds);
	tls_identity_free(c->ident);
	rsa_private_free(c->pending);
	me_info_clear(&c->me);
	crypto_wipe(c, sizeof(*c));
	free(c);
	return r;
}
