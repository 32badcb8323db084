/* session.h: one client session over one connection (SPEC.md 5-7): register (825, 826) or
 * reconnect (827, and 825/826 after a 1606), then the file in 828 packets (send.h) and the CRC
 * loop (900 / 901 / 902), retrying a step on 1607 or a bad reply. Prints its
 * messages (log.h) and returns an exit status (options.h). */
#ifndef SD_CLIENT_SESSION_H
#define SD_CLIENT_SESSION_H

#include <stdint.h>

#define SESSION_MAX_ATTEMPTS 4     /* one try and 3 retries per step (SPEC.md 7) */
#define SESSION_MAX_UPLOADS 4      /* 901 after uploads 1-3, 902 after the 4th (SPEC.md 5) */
#define SESSION_MAX_STRAY_ACKS 8   /* stray 1604s skipped while waiting for a 1603 */
#define SESSION_ACK_WAIT_MS 1000  /* after 900/902: wait for a 1604's payload at most this */
#define SESSION_DRAIN_MS 100       /* quiet time that ends the reading of stale error replies */

struct session_config {
	const char *host;
	const char *port;
	const char *name;          /* from transfer.info (or --name) */
	const char *file_path;
	const char *me_path;       /* me.info */
	const char *priv_path;     /* priv.key */
	int connect_timeout_ms;
	int timeout_ms;
	uint32_t packet_size;
	int packet_size_fixed;     /* 0: enlarged if the file needs more than 65535 packets */
	int first_packet;          /* 0 or 1 */
	int pad_last_packet;
	int per_packet;
	int single_packet;
	int paced;                 /* --paced: each packet written alone (send.h) */
	int progress;              /* draw a progress bar on stderr */
};

/* Runs the whole session; returns CX_OK only when the server confirmed the CRC. */
int session_run(const struct session_config *cfg);

/* send_plan() (send.h) with the layout of cfg; kept for the unit tests. */
int session_plan(const struct session_config *cfg, uint64_t plain_size, uint32_t *packet_size,
    uint32_t *packets, uint64_t *cipher_size);

#endif
