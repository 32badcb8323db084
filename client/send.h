/* send.h: one upload of the file as 828 packets (SPEC.md 5): the packet plan, the cutter that
 * cuts one AES-CBC stream into packets (layouts 1-4), the sender that encrypts each packet on
 * its own (layout 5), and --paced (each packet written whole, on its own). Wire bytes gather in
 * one bounded struct buf (protocol/buf.h) before they are written; for one CBC stream without
 * --paced, only the headers do, and the ciphertext is written from where it was encrypted.
 * Prints its failures (log.h) and returns an exit status (options.h). Nothing here is kept between calls. */
#ifndef SD_CLIENT_SEND_H
#define SD_CLIENT_SEND_H

#include <stdint.h>

#include "progress.h"

#define SEND_IO_CHUNK 65536u          /* plaintext read per step; memory does not grow beyond */
#define SEND_PIPE_CHUNK (1024u * 1024u) /* the same with the sending thread (sendq.h), per slot */
#define SEND_OUT_BUFFER (256u * 1024u) /* wire bytes gathered before one write */
#define SEND_MAX_PACKETS 65535u        /* total_packets is a u16 */
#define SEND_IOV_MAX 64u               /* pieces per write (headers and content, see send.c) */
#define SEND_PIECE_MIN 4096u           /* shorter content is copied rather than listed */

/* How the file is cut into packets (the options of docs/sealdrop-client.1). */
struct send_layout {
	uint32_t packet_size;      /* content bytes per packet */
	int packet_size_fixed;     /* 0: enlarged if the file needs more than 65535 packets */
	int first_packet;          /* 0 or 1 */
	int pad_last_packet;
	int per_packet;
	int single_packet;
	int paced;                 /* one write per packet, after the previous one left */
};

/* One upload; every pointer is borrowed for the call. */
struct send_job {
	int sock;
	int timeout_ms;
	int file_fd;               /* read from its start */
	const char *file_path;     /* for messages */
	uint64_t file_size;        /* as opened: a different size now is an error */
	const char *file_name;     /* the base name for the packets' file_name field */
	const uint8_t *client_id;  /* CLIENT_ID_SIZE bytes */
	const uint8_t *aes_key;    /* AES_KEY_SIZE bytes */
	int upload_no;             /* 1..4, for the verbose log */
	struct progress *progress; /* updated as the file is read */
};

/* Packet plan for a file of plain_size bytes: the content bytes per packet, the number of
 * packets and the ciphertext size. Returns 0, or SD_ERR_TOO_LARGE when the sizes do not fit the
 * u32/u16 fields (packet_size may be enlarged first when not fixed), SD_ERR_INVALID_ARG for a
 * zero packet size. */
int send_plan(const struct send_layout *l, uint64_t plain_size, uint32_t *packet_size,
    uint32_t *packets, uint64_t *cipher_size);

/* Reads the whole file from its start, encrypts it and sends it in 828 packets. On success
 * (CX_OK) *crc is the cksum of the plaintext sent; otherwise an exit status. */
int send_file(const struct send_layout *l, const struct send_job *job, uint32_t *crc);

#endif
