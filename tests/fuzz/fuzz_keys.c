/* fuzz_keys.c: libFuzzer target for the key decoders: SPKI (as the 160-byte field and whole),
 * private key DER (PKCS#8 or PKCS#1) and base64. What decodes is encoded again; that encoding
 * must decode to the same encoding (round trip is stable), or the target aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/base64.h"
#include "../../protocol/codes.h"
#include "../../protocol/crypto.h"
#include "../../protocol/rsa.h"
#include "../../protocol/der.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_spki(const uint8_t *data, size_t size)
{
	struct rsa_public *k = NULL, *again = NULL;
	uint8_t out[PUBLIC_KEY_SIZE], out2[PUBLIC_KEY_SIZE];
	size_t n = 0, n2 = 0;

	if (rsa_public_from_spki(data, size, &k) != 0) {
		if (k != NULL)
			abort(); /* nothing handed out on failure */
		return;
	}
	if (rsa_public_bits(k) < 1024 || rsa_public_exponent(k) < 3)
		abort();
	if (rsa_public_to_spki(k, out, sizeof(out), &n) != 0 ||
	    rsa_public_from_spki(out, n, &again) != 0 ||
	    rsa_public_to_spki(again, out2, sizeof(out2), &n2) != 0 || n != n2 ||
	    memcmp(out, out2, n) != 0)
		abort();
	rsa_public_free(k);
	rsa_public_free(again);
}

static void check_private(const uint8_t *data, size_t size)
{
	struct rsa_private *k = NULL, *again = NULL;
	uint8_t *der = NULL, *der2 = NULL;
	size_t n = 0, n2 = 0;

	if (rsa_private_from_der(data, size, &k) != 0) {
		if (k != NULL)
			abort();
		return;
	}
	if (rsa_private_to_pkcs8(k, &der, &n) != 0 || rsa_private_from_der(der, n, &again) != 0 ||
	    rsa_private_to_pkcs8(again, &der2, &n2) != 0 || n != n2 || memcmp(der, der2, n) != 0)
		abort();
	crypto_free_secret(der, n);
	crypto_free_secret(der2, n2);
	rsa_private_free(k);
	rsa_private_free(again);
}

static void check_base64(const uint8_t *data, size_t size)
{
	uint8_t *bytes = NULL, *bytes2 = NULL;
	char *text = NULL;
	size_t n = 0, tn = 0, n2 = 0;

	if (base64_decode((const char *)data, size, &bytes, &n) != 0) {
		if (bytes != NULL)
			abort();
		return;
	}
	if (base64_encode(bytes, n, &text, &tn) != 0 || tn > size ||
	    base64_decode(text, tn, &bytes2, &n2) != 0 || n2 != n || memcmp(bytes, bytes2, n) != 0)
		abort();
	crypto_free_secret(bytes, n);
	crypto_free_secret(bytes2, n2);
	crypto_free_secret(text, tn + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct der_rsa_public pub;
	size_t used;

	if (crypto_init() != 0)
		abort();
	check_spki(data, size < PUBLIC_KEY_SIZE ? size : PUBLIC_KEY_SIZE);
	check_spki(data, size);
	/* The DER layer alone, without the key checks on top. */
	if (der_spki_decode(data, size, &used, &pub) == 0 && used > size)
		abort();
	check_private(data, size);
	check_base64(data, size);
	return 0;
}
