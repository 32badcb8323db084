/* upload.c: the server's reassembler of 828 packets into one decrypted file, for every sender
 * layout of SPEC.md section 5, detected from the first packet; streams plaintext to a sink. */
#include "upload.h"

#include <stdlib.h>
#include <string.h>

#include "../protocol/cksum.h"
#include "../protocol/aes.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"

/* Ciphertext is decrypted in pieces of at most this size, so memory stays fixed. */
#define UPLOAD_CHUNK (64u * 1024u)
/* Plaintext gathers in out until less room than this is left, so that the content on both
 * sides of a packet boundary goes out in one write (a read of the socket holds pieces of two
 * packets: writing each piece on its own took twice the writes). */
#define UPLOAD_WRITE_ROOM (4u * 1024u)
/* A lone packet (1 of 1) of a fixed-size sender may carry zero fill past content_size; with no
 * earlier packet to tell the sender's packet size, the fill is capped by this. */
#define UPLOAD_FILL_MAX (64u * 1024u)

struct upload {
	struct aes_cbc *aes;       /* holds the key; the connection holds the only copy */
	uint64_t max_file_size;

	/* The upload in progress, fixed by its first packet. */
	int active;
	enum upload_layout layout;
	uint32_t first_number;     /* 0 or 1 */
	uint32_t total;            /* packets announced */
	uint32_t next;             /* number the next packet must carry */
	uint32_t packets;          /* packets begun so far */
	uint32_t content_size;     /* STREAM: total ciphertext announced in every packet */
	uint32_t orig_file_size;
	uint32_t first_len;        /* content_len of the first packet (fixed-size senders) */
	char name[NAME_FIELD_SIZE];
	uint64_t cipher_kept;      /* ciphertext bytes decrypted so far (fill excluded) */
	uint64_t plain_size;       /* plaintext bytes handed to the sink */
	struct cksum crc;

	/* The current packet. */
	int in_packet;
	int last;                  /* it is the last packet of the upload */
	int first;                 /* it opened the upload */
	uint32_t pkt_len;          /* its content_len */
	uint32_t pkt_got;          /* content bytes seen */
	uint32_t pkt_keep;         /* of which ciphertext; the rest is fill to discard */

	int have_result;
	struct upload_result result;

	size_t out_len;            /* plaintext in out not handed to the sink yet */
	uint8_t out[UPLOAD_CHUNK + AES_BLOCK_SIZE];
};

/* Forgets the upload in progress; the cipher starts a fresh stream. */
static void
upload_reset(struct upload *u)
{
	u->active = 0;
	u->in_packet = 0;
	u->layout = UPLOAD_LAYOUT_UNKNOWN;
	u->cipher_kept = 0;
	u->plain_size = 0;
	u->packets = 0;
	u->out_len = 0;
	crypto_wipe(u->out, sizeof(u->out));
	if (u->aes != NULL)
		(void)aes_cbc_reset(u->aes);
}

int
upload_new(struct upload **out, const uint8_t key[AES_KEY_SIZE], uint64_t max_file_size)
{
	struct upload *u = NULL;
	int r;

	if (out == NULL || key == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return SD_ERR_ALLOC;
	u->max_file_size = max_file_size;
	if ((r = aes_cbc_new(&u->aes, key, AES_DECRYPT)) != 0)
		goto out;
	*out = u;
	u = NULL;
	r = 0;
out:
	upload_free(u);
	return r;
}

void
upload_free(struct upload *u)
{
	if (u == NULL)
		return;
	aes_cbc_free(u->aes);
	crypto_wipe(u, sizeof(*u));
	free(u);
}

/* 1: name is a non-empty, NUL-terminated file name field. */
static int
name_ok(const char *name)
{
	size_t n = strnlen(name, NAME_FIELD_SIZE);

	return n > 0 && n < NAME_FIELD_SIZE;
}

/* Reads p as the first packet of a new upload: fills the layout, numbering and sizes in u.
 * The two layouts cannot both fit one packet: a whole-stream first packet carries number 0 or
 * 1 at offset 8, a per-packet first packet carries its total (at least 2) there. */
static int
start_upload(struct upload *u, const struct msg_file_packet *p, uint32_t content_len)
{
	uint16_t at8 = p->packet_number, at10 = p->total_packets;

	if (!name_ok(p->file_name))
		return SD_ERR_BAD_STRING;
	if (p->orig_file_size > u->max_file_size)
		return SD_ERR_TOO_LARGE;
	if (p->content_size == aes_cbc_ciphertext_size(p->orig_file_size) && at8 <= 1) {
		/* Variants 1-4: content_size is the whole ciphertext; numbering from 0 or 1. */
		if (p->content_size % AES_BLOCK_SIZE != 0 || at10 == 0)
			return SD_ERR_BAD_FIELD;
		u->layout = UPLOAD_LAYOUT_STREAM;
		u->first_number = at8;
		u->total = at10;
		u->next = at8;
	} else if (at8 >= 2 && at10 <= 1 && p->content_size == content_len) {
		/* Variant 5: each packet is its own CBC message, fields written total-first, so
		 * the standard reading would say "packet 3 of 1". content_size equals the content. */
		u->layout = UPLOAD_LAYOUT_PER_PACKET;
		u->first_number = at10;
		u->total = at8;
		u->next = at10;
	} else {
		return SD_ERR_BAD_FIELD;
	}
	u->active = 1;
	u->packets = 0;
	u->content_size = p->content_size;
	u->orig_file_size = p->orig_file_size;
	u->first_len = content_len;
	memcpy(u->name, p->file_name, NAME_FIELD_SIZE);
	u->cipher_kept = 0;
	u->plain_size = 0;
	cksum_init(&u->crc);
	return aes_cbc_reset(u->aes);
}

/* 1: p carries the number that the upload in progress expects next, with the same name, file
 * size, total and (whole-stream) content_size. */
static int
continues(const struct upload *u, const struct msg_file_packet *p)
{
	uint16_t number, total;

	if (!u->active)
		return 0;
	if (u->layout == UPLOAD_LAYOUT_PER_PACKET) {
		total = p->packet_number;
		number = p->total_packets;
	} else {
		number = p->packet_number;
		total = p->total_packets;
		if (p->content_size != u->content_size)
			return 0;
	}
	return number == u->next && total == u->total &&
	    p->orig_file_size == u->orig_file_size &&
	    strncmp(p->file_name, u->name, NAME_FIELD_SIZE) == 0;
}

/* 1: p could open an upload: its number (in either field order) is 0 or 1. Used to tell a
 * resend after 901 (a new attempt) from a broken continuation. */
static int
looks_first(const struct msg_file_packet *p)
{
	return p->packet_number <= 1 || p->total_packets <= 1;
}

/* Sizes of the packet just begun, against what the upload still expects. */
static int
check_packet_sizes(struct upload *u, const struct msg_file_packet *p, uint32_t content_len)
{
	uint64_t remaining, fill;

	if (content_len == 0)
		return SD_ERR_BAD_FIELD;  /* no sender sends an empty packet */
	if (u->layout == UPLOAD_LAYOUT_PER_PACKET) {
		/* A whole CBC message, and never more than the rest of the file can need. */
		if (p->content_size != content_len || content_len % AES_BLOCK_SIZE != 0)
			return SD_ERR_BAD_FIELD;
		if (content_len > aes_cbc_ciphertext_size(u->orig_file_size - u->plain_size))
			return SD_ERR_BAD_FIELD;
		u->pkt_keep = content_len;
		return 0;
	}
	remaining = u->content_size - u->cipher_kept;
	if (!u->last) {
		/* Every packet before the last leaves something for the last one. */
		if (content_len >= remaining)
			return SD_ERR_BAD_FIELD;
		u->pkt_keep = content_len;
		return 0;
	}
	if (content_len < remaining)
		return SD_ERR_BAD_FIELD;  /* truncated: the last packet cannot complete the file */
	/* Variant 3: fixed-size senders fill their last packet with zeros past content_size.
	 * The fill is at most a packet: the same size as the first packet had, or, for a lone
	 * packet, UPLOAD_FILL_MAX. */
	fill = content_len - remaining;
	if (fill > 0) {
		if (u->packets > 1 ? content_len > u->first_len : fill > UPLOAD_FILL_MAX)
			return SD_ERR_BAD_FIELD;
	}
	u->pkt_keep = (uint32_t)remaining;
	return 0;
}

int
upload_packet_begin(struct upload *u, const struct msg_file_packet *p, uint32_t content_len)
{
	int r;

	if (u == NULL || p == NULL)
		return SD_ERR_INVALID_ARG;
	if (u->in_packet) {
		r = SD_ERR_INVALID_ARG;  /* the caller did not end the previous packet */
		goto out;
	}
	u->first = 0;
	if (!continues(u, p)) {
		/* Not the next packet: only the first packet of a new attempt is welcome here
		 * (the resend after 901 starts over and replaces what came before). */
		if (u->active && !looks_first(p)) {
			r = SD_ERR_BAD_FIELD;
			goto out;
		}
		upload_reset(u);
		if ((r = start_upload(u, p, content_len)) != 0)
			goto out;
		u->first = 1;
	}
	u->packets++;
	u->last = u->next == u->first_number + u->total - 1u;
	if ((r = check_packet_sizes(u, p, content_len)) != 0)
		goto out;
	u->next++;
	u->pkt_len = content_len;
	u->pkt_got = 0;
	u->in_packet = 1;
	r = 0;
out:
	if (r != 0)
		upload_reset(u);
	return r;
}

/* Hands the plaintext gathered in u->out to the sink. */
static int
flush(struct upload *u, const struct upload_sink *sink)
{
	size_t n = u->out_len;

	u->out_len = 0;
	return n > 0 ? sink->write(sink->ctx, u->out, n) : 0;
}

/* Takes n more bytes of plaintext, decrypted at the end of u->out, into the CRC, never past
 * orig_file_size; they go to the sink once out is nearly full or the upload ends. */
static int
emit(struct upload *u, size_t n, const struct upload_sink *sink)
{
	if (n == 0)
		return 0;
	if (n > u->orig_file_size - u->plain_size)
		return SD_ERR_BAD_FIELD;  /* more plaintext than the sender announced */
	cksum_update(&u->crc, u->out + u->out_len, n);
	u->plain_size += n;
	u->out_len += n;
	/* Written before less than UPLOAD_WRITE_ROOM is left: decrypt() then always has that
	 * much room, and out_len never passes UPLOAD_CHUNK by more than the held-back block
	 * (a sum, not a difference: out_len may exceed the chunk by up to 15 bytes here). */
	return u->out_len + UPLOAD_WRITE_ROOM > UPLOAD_CHUNK ? flush(u, sink) : 0;
}

/* Decrypts n bytes of ciphertext in pieces that fit the room left in u->out: emit() leaves
 * out_len at most UPLOAD_CHUNK - UPLOAD_WRITE_ROOM, and the cipher gives at most a held-back
 * block (15 bytes) more than it takes, which the AES_BLOCK_SIZE bytes beyond the chunk hold.
 * (Per-packet senders leave out_len off the 16-byte grid, so this bound is what matters.) */
static int
decrypt(struct upload *u, const uint8_t *data, size_t n, const struct upload_sink *sink)
{
	size_t take, got;
	int r;

	while (n > 0) {
		take = UPLOAD_CHUNK - u->out_len;
		if (take > n)
			take = n;
		got = 0;
		if ((r = aes_cbc_update(u->aes, data, take, u->out + u->out_len, &got)) != 0)
			return r;
		if ((r = emit(u, got, sink)) != 0)
			return r;
		data += take;
		n -= take;
		u->cipher_kept += take;
	}
	return 0;
}

int
upload_packet_is_first(const struct upload *u)
{
	return u != NULL && u->in_packet && u->first;
}

int
upload_packet_data(struct upload *u, const uint8_t *data, size_t n,
    const struct upload_sink *sink)
{
	size_t keep = 0, i;
	int r;

	if (u == NULL || sink == NULL || sink->write == NULL || (data == NULL && n > 0))
		return SD_ERR_INVALID_ARG;
	if (!u->in_packet) {
		r = SD_ERR_INVALID_ARG;
		goto out;
	}
	if (n > u->pkt_len - u->pkt_got) {
		r = SD_ERR_TOO_LARGE;  /* more content than the packet announced */
		goto out;
	}
	if (u->pkt_got < u->pkt_keep)
		keep = u->pkt_keep - u->pkt_got < n ? u->pkt_keep - u->pkt_got : n;
	if ((r = decrypt(u, data, keep, sink)) != 0)
		goto out;
	/* The fill past content_size is documented as zeros; anything else means we misread
	 * the layout, so it is refused rather than silently dropped. */
	for (i = keep; i < n; i++) {
		if (data[i] != 0) {
			r = SD_ERR_BAD_FIELD;
			goto out;
		}
	}
	u->pkt_got += (uint32_t)n;
	r = 0;
out:
	if (r != 0)
		upload_reset(u);
	return r;
}

int
upload_packet_end(struct upload *u, const struct upload_sink *sink, int *complete)
{
	size_t got = 0;
	int r;

	if (complete != NULL)
		*complete = 0;
	if (u == NULL || sink == NULL || sink->write == NULL || complete == NULL)
		return SD_ERR_INVALID_ARG;
	if (!u->in_packet) {
		r = SD_ERR_INVALID_ARG;
		goto out;
	}
	if (u->pkt_got != u->pkt_len) {
		r = SD_ERR_SHORT;
		goto out;
	}
	u->in_packet = 0;
	/* Per-packet senders close a CBC message in every packet; a stream closes at the end. */
	if (u->layout == UPLOAD_LAYOUT_PER_PACKET || u->last) {
		if ((r = aes_cbc_final(u->aes, u->out + u->out_len, &got)) != 0 ||
		    (r = emit(u, got, sink)) != 0)
			goto out;
		if ((r = aes_cbc_reset(u->aes)) != 0)
			goto out;
	}
	if (!u->last) {
		r = 0;
		goto out;
	}
	if (u->plain_size != u->orig_file_size) {
		r = SD_ERR_BAD_FIELD;
		goto out;
	}
	if ((r = flush(u, sink)) != 0)
		goto out;
	memset(&u->result, 0, sizeof(u->result));
	memcpy(u->result.file_name, u->name, NAME_FIELD_SIZE);
	u->result.plain_size = u->plain_size;
	u->result.ciphertext_size = u->cipher_kept;
	u->result.cksum = cksum_final(&u->crc);
	u->result.layout = u->layout;
	u->result.first_packet_number = (int)u->first_number;
	u->result.packets = u->packets;
	u->have_result = 1;
	upload_reset(u);
	*complete = 1;
	r = 0;
out:
	if (r != 0)
		upload_reset(u);
	return r;
}

int
upload_result(const struct upload *u, struct upload_result *out)
{
	if (u == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	if (!u->have_result)
		return SD_ERR_NOT_FOUND;
	*out = u->result;
	return 0;
}

int
upload_in_progress(const struct upload *u)
{
	return u != NULL && u->active;
}

void
upload_abort(struct upload *u)
{
	if (u != NULL)
		upload_reset(u);
}
