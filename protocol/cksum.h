/* cksum.h: the POSIX cksum CRC (CRC-32, polynomial 0x04C11DB7, not reflected, initial 0, the
 * length appended least significant byte first, complemented). Equals GNU `cksum`. Incremental:
 * update over any slices, finish once. */
#ifndef SD_CKSUM_H
#define SD_CKSUM_H

#include <stddef.h>
#include <stdint.h>

struct cksum {
	uint32_t crc;
	uint64_t length;
};

void cksum_init(struct cksum *c);
void cksum_update(struct cksum *c, const void *data, size_t n);
/* The final value; c is not changed (call again after more updates if wanted). */
uint32_t cksum_final(const struct cksum *c);
/* One buffer in one call. */
uint32_t cksum_buffer(const void *data, size_t n);

/* For tests and benchmarks: the same update through the portable table loop only (the result
 * equals cksum_update's), and whether cksum_update uses the CPU's carry-less multiply. */
void cksum_update_portable(struct cksum *c, const void *data, size_t n);
int cksum_has_clmul(void);

#endif
