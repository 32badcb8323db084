/* cksum.c: the POSIX cksum CRC (equal to GNU cksum), incremental. A portable slice-by-8 table
 * path, and on x86-64 CPUs with PCLMULQDQ a carry-less multiply folding path chosen at run time. */
#include "cksum.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CKSUM_X86_CLMUL 1
#include <immintrin.h>
#endif

/* The CRC-32 polynomial without its x^32 term; bits are coefficients, bit 31 = x^31. */
#define CKSUM_POLY 0x04C11DB7u
/* Below this many bytes the folding set-up costs more than the table loop. */
#define CKSUM_CLMUL_MIN 256u

/* table[k][b]: the CRC register after feeding byte b followed by k zero bytes into a zero
 * register; slice-by-8 combines eight of these per 8-byte step. Filled once. */
static uint32_t table[8][256];
static int have_clmul;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

#ifdef CKSUM_X86_CLMUL
/* Folding constants x^D mod P, as 32-bit polynomials (see fold_clmul). */
static uint32_t k128, k192, k512, k576;
#endif

#ifdef CKSUM_X86_CLMUL
/* x^d mod P by repeated multiplication by x; only used once at set-up. */
static uint32_t xpow_mod(unsigned d)
{
	uint32_t r = 1;

	while (d-- > 0)
		r = (r & 0x80000000u) ? (r << 1) ^ CKSUM_POLY : r << 1;
	return r;
}
#endif

static void setup(void)
{
	for (unsigned b = 0; b < 256; b++) {
		uint32_t c = (uint32_t)b << 24;
		for (int i = 0; i < 8; i++)
			c = (c & 0x80000000u) ? (c << 1) ^ CKSUM_POLY : c << 1;
		table[0][b] = c;
	}
	for (unsigned b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			table[k][b] = (table[k - 1][b] << 8) ^ table[0][table[k - 1][b] >> 24];
#ifdef CKSUM_X86_CLMUL
	k128 = xpow_mod(128);
	k192 = xpow_mod(192);
	k512 = xpow_mod(512);
	k576 = xpow_mod(576);
	__builtin_cpu_init();
	have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3");
#endif
}

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The register after feeding p[0..n) MSB first (no length, no complement). */
static uint32_t update_table(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint32_t a = load_be32(p) ^ crc, b = load_be32(p + 4);
		crc = table[7][a >> 24] ^ table[6][(a >> 16) & 0xff] ^ table[5][(a >> 8) & 0xff] ^
		    table[4][a & 0xff] ^ table[3][b >> 24] ^ table[2][(b >> 16) & 0xff] ^
		    table[1][(b >> 8) & 0xff] ^ table[0][b & 0xff];
		p += 8;
		n -= 8;
	}
	while (n-- > 0)
		crc = (crc << 8) ^ table[0][(crc >> 24) ^ *p++];
	return crc;
}

#ifdef CKSUM_X86_CLMUL
/* Folding (non-reflected CRC): each 16-byte block is byte-swapped so that bit 127 of the
 * register is the first bit on the wire, i.e. the register is the block as a polynomial.
 * An accumulator A followed by D more bits is A * x^D; with A = H * x^64 + L that is
 * congruent mod P to H * (x^(D+64) mod P) + L * (x^D mod P), two 64x32-bit carry-less products
 * that fit in 128 bits. Four accumulators take alternate blocks (D = 512) to hide the multiply
 * latency; at the end they are folded into one (D = 128) and that 128-bit polynomial A, which
 * is congruent to the input, is turned into a CRC register by the table loop over its 16
 * bytes (that computes A * x^32 mod P). The incoming register is XORed into the first 32 bits,
 * which is how a CRC register continues into more data. Consumes n - n % 64 bytes (n >= 128). */
__attribute__((target("pclmul,ssse3")))
static uint32_t update_clmul(uint32_t crc, const uint8_t *p, size_t n)
{
	const __m128i swap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	const __m128i k_far = _mm_set_epi64x((long long)k576, (long long)k512);
	const __m128i k_near = _mm_set_epi64x((long long)k192, (long long)k128);
	__m128i a0, a1, a2, a3, t;
	uint8_t last[16];

	a0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), swap);
	a1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)), swap);
	a2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 32)), swap);
	a3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)), swap);
	a0 = _mm_xor_si128(a0, _mm_set_epi32((int)crc, 0, 0, 0));
	p += 64;
	n -= 64;

#define FOLD(acc, k, next) \
	_mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128((acc), (k), 0x11), \
	    _mm_clmulepi64_si128((acc), (k), 0x00)), (next))
#define LOAD(off) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + (off))), swap)

	while (n >= 64) {
		a0 = FOLD(a0, k_far, LOAD(0));
		a1 = FOLD(a1, k_far, LOAD(16));
		a2 = FOLD(a2, k_far, LOAD(32));
		a3 = FOLD(a3, k_far, LOAD(48));
		p += 64;
		n -= 64;
	}
	t = FOLD(a0, k_near, a1);
	t = FOLD(t, k_near, a2);
	t = FOLD(t, k_near, a3);
#undef FOLD
#undef LOAD

	_mm_storeu_si128((__m128i *)(void *)last, _mm_shuffle_epi8(t, swap));
	return update_table(0, last, sizeof(last));
}
#endif

static void update_with(struct cksum *c, const uint8_t *p, size_t n, int allow_clmul)
{
	pthread_once(&setup_once, setup);
	c->length += n;
#ifdef CKSUM_X86_CLMUL
	if (allow_clmul && have_clmul && n >= CKSUM_CLMUL_MIN) {
		size_t bulk = n - n % 64;
		c->crc = update_clmul(c->crc, p, bulk);
		p += bulk;
		n -= bulk;
	}
#else
	(void)allow_clmul;
#endif
	c->crc = update_table(c->crc, p, n);
}

void cksum_init(struct cksum *c)
{
	c->crc = 0;
	c->length = 0;
}

void cksum_update(struct cksum *c, const void *data, size_t n)
{
	update_with(c, data, n, 1);
}

void cksum_update_portable(struct cksum *c, const void *data, size_t n)
{
	update_with(c, data, n, 0);
}

int cksum_has_clmul(void)
{
	pthread_once(&setup_once, setup);
	return have_clmul;
}

uint32_t cksum_final(const struct cksum *c)
{
	uint32_t crc = c->crc;
	uint64_t len = c->length;

	pthread_once(&setup_once, setup);
	/* POSIX appends the length, least significant byte first, only as many bytes as it has. */
	while (len > 0) {
		crc = (crc << 8) ^ table[0][(crc >> 24) ^ (uint8_t)(len & 0xff)];
		len >>= 8;
	}
	return ~crc;
}

uint32_t cksum_buffer(const void *data, size_t n)
{
	struct cksum c;

	cksum_init(&c);
	cksum_update(&c, data, n);
	return cksum_final(&c);
}
