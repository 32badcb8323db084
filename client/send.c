/* send.c: one upload of the file (send.h): read, CRC, encrypt and cut into 828 packets in one
 * pass. Memory is fixed whatever the file size: one read chunk, its ciphertext, and the output
 * buffer (a bounded struct buf of fixed storage) that gathers packet headers and content before
 * each write. In the common case (one CBC stream, not --paced) the ciphertext is not copied
 * into that buffer: each write is a list of pieces (headers from the buffer, content straight
 * from the ciphertext chunk), sent before the chunk is reused. A file of more than one chunk
 * goes through a sending thread (sendq.h): SENDQ_DEPTH slots of ciphertext and headers, each
 * list written by the thread while the next slot is encrypted. */
#include "send.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../protocol/aes.h"
#include "../protocol/buf.h"
#include "../protocol/cksum.h"
#include "../protocol/codes.h"
#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "../protocol/msg.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "sendq.h"

/* One upload in progress. */
struct sender {
	const struct send_layout *l;
	const struct send_job *job;
	struct aes_cbc *enc;
	struct cksum ck;
	struct buf out;       /* wire bytes not yet written, at most SEND_OUT_BUFFER */
	int direct;           /* content goes out from s->cipher, listed in iov */
	struct iovec iov[SEND_IOV_MAX]; /* direct: the pieces of the next write, in order */
	size_t n_iov;
	size_t out_mark;      /* direct: bytes of out already listed in iov */
	uint8_t *plain;       /* chunk bytes read from the file */
	uint8_t *cipher;      /* chunk + AES_BLOCK_SIZE bytes: their ciphertext (the slot's) */
	size_t chunk;         /* plaintext bytes read and encrypted per step */
	uint64_t read;        /* plaintext bytes read so far */
	/* With a sending thread (direct only): the slot being filled takes the next chunk's
	 * ciphertext and headers while the thread writes the slots before it. */
	struct sendq *q;
	uint8_t *slot_cipher[SENDQ_DEPTH];
	uint8_t *slot_out[SENDQ_DEPTH];
	unsigned slot;
	int in_chunk;         /* cutting a chunk: a flush now leaves pieces in the old slot */
	int spilled;          /* that happened: the chunk's end waits for the thread to drain */
};

_Static_assert(SEND_IOV_MAX <= SENDQ_IOV_MAX, "a list of pieces must fit the sending thread's");

/* Packet cutter for one CBC stream (layouts 1-4): ciphertext in, packets out. */
struct cutter {
	uint32_t ps;          /* content bytes per packet */
	uint32_t packets;
	uint64_t cipher;      /* total ciphertext */
	uint32_t next;        /* index of the next packet to start */
	uint64_t left;        /* real bytes still due in the current packet */
	uint64_t pad;         /* zeros after them (--pad-last-packet) */
};

int
send_plan(const struct send_layout *l, uint64_t plain_size, uint32_t *packet_size,
    uint32_t *packets, uint64_t *cipher_size)
{
	uint64_t ps = l->packet_size, c, n, unit;

	if (plain_size > UINT32_MAX)
		return SD_ERR_TOO_LARGE;
	c = aes_cbc_ciphertext_size(plain_size);
	if (c > UINT32_MAX)
		return SD_ERR_TOO_LARGE;
	if (l->single_packet)
		ps = c;
	if (ps == 0)
		return SD_ERR_INVALID_ARG;
	unit = l->per_packet ? plain_size : c;
	n = unit == 0 ? 1 : (unit + ps - 1) / ps;
	if (n > SEND_MAX_PACKETS && !l->packet_size_fixed) {
		/* Larger packets, rounded to whole AES blocks, so the count fits the u16. */
		ps = (unit + SEND_MAX_PACKETS - 1) / SEND_MAX_PACKETS;
		ps = (ps + AES_BLOCK_SIZE - 1) / AES_BLOCK_SIZE * AES_BLOCK_SIZE;
		n = (unit + ps - 1) / ps;
	}
	if (n > SEND_MAX_PACKETS)
		return SD_ERR_TOO_LARGE;
	/* Each packet's payload (267 + content) must fit the u32 payload_size. */
	if ((l->per_packet ? aes_cbc_ciphertext_size(ps) : ps) >
	    (uint64_t)UINT32_MAX - FILE_PACKET_HEADER_SIZE)
		return SD_ERR_TOO_LARGE;
	*packet_size = (uint32_t)ps;
	*packets = (uint32_t)n;
	*cipher_size = c;
	return 0;
}

/* ---- output ---- */

/* Direct: lists the bytes put into out since the last piece as a piece of their own (the
 * caller has kept a slot free). */
static void
list_out(struct sender *s)
{
	if (buf_len(&s->out) == s->out_mark)
		return;
	s->iov[s->n_iov].iov_base = (void *)(uintptr_t)(buf_ptr(&s->out) + s->out_mark);
	s->iov[s->n_iov].iov_len = buf_len(&s->out) - s->out_mark;
	s->n_iov++;
	s->out_mark = buf_len(&s->out);
}

/* A write failed, errno says why. */
static int
send_failed(struct sender *s)
{
	if (errno == ETIMEDOUT)
		log_fatal("sending the file: the server took nothing for %d.%03d s (timeout)",
		    s->job->timeout_ms / 1000, s->job->timeout_ms % 1000);
	else
		log_fatal("sending the file: connection lost (%s)", strerror(errno));
	return CX_CONNECTION;
}

/* Direct, with the sending thread: queues the slot's pieces and moves to the next free slot.
 * A slot is left only with a list pushed, so that "at most SENDQ_DEPTH - 1 lists pending"
 * means the list that left the slot about to be filled again is written (a slot left without
 * one, e.g. after the last bytes of a file that gave no ciphertext yet, let a padded packet's
 * zeros overwrite a header still queued). A flush in the middle of a chunk (pieces of more
 * packets than a list holds, or padding larger than the output buffer) leaves the rest of the
 * chunk pointing into the old slot's ciphertext: the chunk's end then waits until the thread
 * has written everything, so that no ciphertext is rewritten while a list points into it. */
static int
handover(struct sender *s)
{
	list_out(s);
	if (s->n_iov == 0) {
		/* Nothing from this slot: it stays the one being filled. */
		if (!s->in_chunk && s->spilled) {
			if (sendq_wait(s->q, 0) != 0)
				return -1;
			s->spilled = 0;
		}
		return 0;
	}
	if (sendq_push(s->q, s->iov, s->n_iov) != 0)
		return -1;
	s->n_iov = 0;
	s->out_mark = 0;
	if (s->in_chunk)
		s->spilled = 1;
	else if (s->spilled) {
		if (sendq_wait(s->q, 0) != 0)
			return -1;
		s->spilled = 0;
	}
	s->slot = (s->slot + 1) % SENDQ_DEPTH;
	if (sendq_wait(s->q, SENDQ_DEPTH - 1) != 0)
		return -1;
	s->cipher = s->slot_cipher[s->slot];
	buf_fixed(&s->out, s->slot_out[s->slot], SEND_OUT_BUFFER);
	return 0;
}

static int
out_flush(struct sender *s)
{
	int r = 0;

	if (s->direct && s->q != NULL) {
		r = handover(s);
	} else if (s->direct) {
		list_out(s);
		if (s->n_iov > 0 && net_sendv(s->job->sock, s->iov, s->n_iov,
		    s->job->timeout_ms) != 0)
			r = -1;
		s->n_iov = 0;
		s->out_mark = 0;
		buf_reset(&s->out);
	} else {
		if (buf_len(&s->out) == 0)
			return 0;
		/* --paced: this packet starts only when the previous one has left our send
		 * queue, so that it travels alone, in one segment when it fits one. */
		if (s->l->paced && net_wait_sent(s->job->sock, s->job->timeout_ms) != 0)
			r = -1;
		if (r == 0 && net_send2(s->job->sock, buf_ptr(&s->out), buf_len(&s->out), NULL,
		    0, s->job->timeout_ms) != 0)
			r = -1;
		buf_reset(&s->out);
	}
	return r != 0 ? send_failed(s) : 0;
}

/* Room for n more bytes in the output buffer, written out first if need be. */
static int
out_room(struct sender *s, size_t n)
{
	if (n <= s->out.max - buf_len(&s->out))
		return 0;
	return out_flush(s);
}

/* Copies n bytes at p into out, flushing as it fills; p NULL: n zero bytes (padding). */
static int
out_put(struct sender *s, const uint8_t *p, uint64_t n)
{
	size_t k;
	int r;

	while (n > 0) {
		if ((r = out_room(s, 1)) != 0)
			return r;
		k = s->out.max - buf_len(&s->out);
		if (k > n)
			k = (size_t)n;
		if ((p != NULL ? buf_put_bytes(&s->out, p, k) : buf_put_zeros(&s->out, k)) != 0) {
			log_fatal("out of memory");
			return CX_FILE;
		}
		if (p != NULL)
			p += k;
		n -= k;
	}
	return 0;
}

/* Content that stays where it is until the next out_flush(): listed as a piece of its own when
 * direct and large enough to be worth a piece, copied into out otherwise. */
static int
out_content(struct sender *s, const uint8_t *p, size_t n)
{
	int r;

	if (!s->direct || n < SEND_PIECE_MIN)
		return out_put(s, p, n);
	/* Two pieces now (the bytes of out before it, and it), and one kept free for what out
	 * gathers after it (the next header, padding) when a flush lists it. */
	if (s->n_iov + 3 > SEND_IOV_MAX && (r = out_flush(s)) != 0)
		return r;
	list_out(s);
	s->iov[s->n_iov].iov_base = (void *)(uintptr_t)p;
	s->iov[s->n_iov].iov_len = n;
	s->n_iov++;
	return 0;
}

/* The end of a packet: with --paced it goes out now, alone. */
static int
packet_done(struct sender *s)
{
	return s->l->paced ? out_flush(s) : 0;
}

static int
put_packet_header(struct sender *s, uint32_t content_size, uint32_t number, uint32_t total,
    uint32_t content_len, int swapped)
{
	struct msg_file_packet f;
	int r;

	memset(&f, 0, sizeof(f));
	f.content_size = content_size;
	f.orig_file_size = (uint32_t)s->job->file_size;
	f.packet_number = (uint16_t)number;
	f.total_packets = (uint16_t)total;
	snprintf(f.file_name, sizeof(f.file_name), "%s", s->job->file_name);
	if ((r = out_room(s, REQ_HEADER_SIZE + FILE_PACKET_HEADER_SIZE)) != 0)
		return r;
	if ((r = msg_put_file_packet_header(&s->out, s->job->client_id, &f, content_len,
	    swapped)) != 0) {
		log_fatal("cannot encode packet %u: %s", number, sd_strerror(r));
		return CX_SERVER;
	}
	if (number == (uint32_t)s->l->first_packet ||
	    number + 1 == total + (uint32_t)s->l->first_packet)
		log_verbose("-> 828 send file, packet %u of %u (%u content bytes)", number, total,
		    content_len);
	return 0;
}

/* ---- input ---- */

static int
file_changed(struct sender *s)
{
	log_fatal("%s changed size while it was being sent", s->job->file_path);
	return CX_FILE;
}

/* Reads exactly n bytes of the file (fewer only at its end). */
static int
read_file(struct sender *s, uint8_t *p, size_t n, size_t *got)
{
	ssize_t k;

	*got = 0;
	while (*got < n) {
		k = read(s->job->file_fd, p + *got, n - *got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			log_fatal("cannot read %s: %s", s->job->file_path, strerror(errno));
			return CX_FILE;
		}
		if (k == 0)
			break;
		*got += (size_t)k;
	}
	return 0;
}

/* After the announced size: anything more means the file grew. */
static int
check_file_end(struct sender *s)
{
	uint8_t extra;
	size_t got;
	int r;

	if ((r = read_file(s, &extra, 1, &got)) != 0)
		return r;
	return got != 0 ? file_changed(s) : 0;
}

/* Reads the next want bytes of the file into the CRC and the cipher; s->cipher then holds
 * *clen bytes of ciphertext. A short read means the file shrank while being sent. */
static int
read_and_encrypt(struct sender *s, size_t want, size_t *clen)
{
	size_t got;
	int r;

	if ((r = read_file(s, s->plain, want, &got)) != 0)
		return r;
	if (got < want)
		return file_changed(s);
	cksum_update(&s->ck, s->plain, got);
	if ((r = aes_cbc_update(s->enc, s->plain, got, s->cipher, clen)) != 0) {
		log_fatal("encryption failed: %s", sd_strerror(r));
		return CX_FILE;
	}
	s->read += got;
	progress_update(s->job->progress, s->read);
	return 0;
}

static int
encrypt_final(struct sender *s, size_t *clen)
{
	int r;

	if ((r = aes_cbc_final(s->enc, s->cipher, clen)) != 0) {
		log_fatal("encryption failed: %s", sd_strerror(r));
		return CX_FILE;
	}
	return 0;
}

/* ---- the two senders ---- */

static int
cut(struct sender *s, struct cutter *c, const uint8_t *p, size_t n)
{
	uint64_t start, real;
	size_t k;
	int r;

	while (n > 0) {
		if (c->left == 0) {
			if (c->next >= c->packets) {
				log_fatal("internal error: more ciphertext than planned");
				return CX_SERVER;
			}
			start = (uint64_t)c->next * c->ps;
			real = c->cipher - start < c->ps ? c->cipher - start : c->ps;
			c->pad = s->l->pad_last_packet ? c->ps - real : 0;
			if ((r = put_packet_header(s, (uint32_t)c->cipher,
			    c->next + (uint32_t)s->l->first_packet, c->packets,
			    (uint32_t)(real + c->pad), 0)) != 0)
				return r;
			c->left = real;
			c->next++;
		}
		k = n < c->left ? n : (size_t)c->left;
		if ((r = out_content(s, p, k)) != 0)
			return r;
		c->left -= k;
		p += k;
		n -= k;
		if (c->left == 0) {
			if ((r = out_put(s, NULL, c->pad)) != 0 || (r = packet_done(s)) != 0)
				return r;
			c->pad = 0;
		}
	}
	return 0;
}

/* Layouts 1-4: the file is one CBC stream, its ciphertext cut into packets. When direct,
 * each chunk's packets are written before the chunk's buffer takes the next ciphertext. */
static int
send_stream(struct sender *s, uint32_t ps, uint32_t packets, uint64_t cipher)
{
	struct cutter c = { ps, packets, cipher, 0, 0, 0 };
	uint64_t size = s->job->file_size;
	size_t clen, want;
	int r;

	while (s->read < size) {
		want = size - s->read < s->chunk ? (size_t)(size - s->read) : s->chunk;
		if ((r = read_and_encrypt(s, want, &clen)) != 0)
			return r;
		s->in_chunk = 1;
		r = cut(s, &c, s->cipher, clen);
		s->in_chunk = 0;
		if (r != 0 || (s->direct && (r = out_flush(s)) != 0))
			return r;
	}
	if ((r = check_file_end(s)) != 0 || (r = encrypt_final(s, &clen)) != 0)
		return r;
	s->in_chunk = 1;
	r = cut(s, &c, s->cipher, clen);
	s->in_chunk = 0;
	if (r != 0)
		return r;
	if (c.next != c.packets || c.left != 0) {
		log_fatal("internal error: %u of %u packets sent", c.next, c.packets);
		return CX_SERVER;
	}
	return 0;
}

/* Layout 5: each ps-byte plaintext chunk is its own CBC message in its own packet. */
static int
send_per_packet(struct sender *s, uint32_t ps, uint32_t packets)
{
	uint64_t chunk, end;
	uint32_t i, csize;
	size_t clen, want;
	int r;

	for (i = 0; i < packets; i++) {
		chunk = s->job->file_size - s->read < ps ? s->job->file_size - s->read : ps;
		csize = (uint32_t)aes_cbc_ciphertext_size(chunk);
		if ((r = put_packet_header(s, csize, i + (uint32_t)s->l->first_packet, packets,
		    csize, 1)) != 0)
			return r;
		if ((r = aes_cbc_reset(s->enc)) != 0) {
			log_fatal("encryption failed: %s", sd_strerror(r));
			return CX_FILE;
		}
		for (end = s->read + chunk; s->read < end;) {
			want = end - s->read < SEND_IO_CHUNK ? (size_t)(end - s->read) :
			    SEND_IO_CHUNK;
			if ((r = read_and_encrypt(s, want, &clen)) != 0 ||
			    (r = out_put(s, s->cipher, clen)) != 0)
				return r;
		}
		if ((r = encrypt_final(s, &clen)) != 0 || (r = out_put(s, s->cipher, clen)) != 0 ||
		    (r = packet_done(s)) != 0)
			return r;
	}
	return check_file_end(s);
}

/* The largest packet on the wire, header included: with --paced it must fit the buffer. */
static uint64_t
packet_wire_size(const struct send_layout *l, uint32_t ps)
{
	return REQ_HEADER_SIZE + FILE_PACKET_HEADER_SIZE +
	    (l->per_packet ? aes_cbc_ciphertext_size(ps) : ps);
}

/* The read chunk, and the output: one slot (ciphertext and output buffer) without the sending
 * thread, SENDQ_DEPTH with it (a file of more than one chunk sent directly), then started. */
static int
alloc_buffers(struct sender *s)
{
	unsigned i, slots;

	s->chunk = s->direct && s->job->file_size > SEND_PIPE_CHUNK ? SEND_PIPE_CHUNK :
	    SEND_IO_CHUNK;
	slots = s->chunk == SEND_PIPE_CHUNK ? SENDQ_DEPTH : 1;
	if ((s->plain = malloc(s->chunk)) == NULL)
		goto oom;
	for (i = 0; i < slots; i++) {
		s->slot_cipher[i] = malloc(s->chunk + AES_BLOCK_SIZE);
		s->slot_out[i] = malloc(SEND_OUT_BUFFER);
		if (s->slot_cipher[i] == NULL || s->slot_out[i] == NULL)
			goto oom;
	}
	s->cipher = s->slot_cipher[0];
	buf_fixed(&s->out, s->slot_out[0], SEND_OUT_BUFFER); /* fixed: pieces point into it */
	if (slots > 1 && sendq_start(&s->q, s->job->sock, s->job->timeout_ms) != 0) {
		log_fatal("cannot start the sending thread: %s", strerror(errno));
		return CX_FILE;
	}
	return 0;
oom:
	log_fatal("out of memory");
	return CX_FILE;
}

static void
free_buffers(struct sender *s)
{
	unsigned i;

	if (s->plain != NULL) {
		crypto_wipe(s->plain, s->chunk);
		free(s->plain);
	}
	for (i = 0; i < SENDQ_DEPTH; i++) {
		free(s->slot_cipher[i]);
		if (s->slot_out[i] != NULL) {
			crypto_wipe(s->slot_out[i], SEND_OUT_BUFFER); /* it held the client ID */
			free(s->slot_out[i]);
		}
	}
}

int
send_file(const struct send_layout *l, const struct send_job *job, uint32_t *crc)
{
	struct sender s;
	struct stat st;
	uint32_t ps, packets;
	uint64_t cipher;
	int r;

	memset(&s, 0, sizeof(s));
	s.l = l;
	s.job = job;
	s.direct = !l->per_packet && !l->paced;
	*crc = 0;
	if (lseek(job->file_fd, 0, SEEK_SET) != 0 || fstat(job->file_fd, &st) != 0) {
		log_fatal("cannot read %s: %s", job->file_path, strerror(errno));
		r = CX_FILE;
		goto out;
	}
	if ((uint64_t)st.st_size != job->file_size) {
		r = file_changed(&s);
		goto out;
	}
	if (send_plan(l, job->file_size, &ps, &packets, &cipher) != 0) {
		log_fatal("%s does not fit the protocol's packets with these options",
		    job->file_path);
		r = CX_FILE;
		goto out;
	}
	if (l->paced && packet_wire_size(l, ps) > SEND_OUT_BUFFER) {
		log_fatal("--paced sends each packet in one write: packets of %u bytes do not fit "
		    "its %u-byte buffer; choose a smaller --packet-size", ps, SEND_OUT_BUFFER);
		r = CX_FILE;
		goto out;
	}
	if ((r = alloc_buffers(&s)) != 0)
		goto out;
	if ((r = aes_cbc_new(&s.enc, job->aes_key, AES_ENCRYPT)) != 0) {
		log_fatal("cannot start encryption: %s", sd_strerror(r));
		r = CX_FILE;
		goto out;
	}
	log_verbose("upload %d: %llu bytes, %llu ciphertext bytes in %u packets of %u%s",
	    job->upload_no, (unsigned long long)job->file_size, (unsigned long long)cipher,
	    packets, ps, l->paced ? ", paced" : "");
	cksum_init(&s.ck);
	r = l->per_packet ? send_per_packet(&s, ps, packets) : send_stream(&s, ps, packets, cipher);
	if (r == 0)
		r = out_flush(&s);
	if (r == 0 && s.q != NULL) {
		r = sendq_finish(s.q) != 0 ? send_failed(&s) : 0;
		s.q = NULL;
	}
	if (r == 0)
		*crc = cksum_final(&s.ck);
out:
	sendq_abort(s.q);
	aes_cbc_free(s.enc);
	free_buffers(&s);
	return r;
}
