/* identity.c: me.key, the client's Ed25519 key and certificate (the key material itself is
 * made, encoded and parsed by protocol/tls.c). */
#include "identity.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../protocol/buf.h"
#include "../protocol/err.h"
#include "files.h"

int
identity_load(const char *path, struct tls_identity **out, char *why, size_t why_cap)
{
	char *text = NULL;
	size_t n = 0;
	int r;

	if (path == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	if ((r = file_read_small(path, TLS_PEM_MAX, &text, &n)) != 0) {
		if (r == SD_ERR_NOT_FOUND)
			file_why(why, why_cap, "%s does not exist", path);
		else if (r == SD_ERR_TOO_LARGE)
			file_why(why, why_cap, "%s is larger than %u bytes", path, TLS_PEM_MAX);
		else
			file_why(why, why_cap, "cannot read %s: %s", path, strerror(errno));
		return r;
	}
	if ((r = tls_identity_from_pem((const uint8_t *)text, n, out)) != 0)
		file_why(why, why_cap, "%s is not a PEM Ed25519 key followed by its certificate "
		    "(%s)", path, sd_strerror(r));
	file_free_small(text, n);
	return r;
}

int
identity_save(const char *path, const struct tls_identity *id, char *why, size_t why_cap)
{
	struct tls_identity *check = NULL;
	char fp_a[TLS_FP_TEXT_SIZE], fp_b[TLS_FP_TEXT_SIZE];
	struct buf pem;
	int r;

	if (path == NULL || id == NULL)
		return SD_ERR_INVALID_ARG;
	buf_init(&pem, TLS_PEM_MAX);
	if ((r = tls_identity_to_pem(id, &pem)) != 0) {
		file_why(why, why_cap, "cannot encode the key for %s (%s)", path, sd_strerror(r));
		goto out;
	}
	/* What we write must read back as the same identity. */
	if ((r = tls_identity_from_pem(buf_ptr(&pem), buf_len(&pem), &check)) != 0 ||
	    (r = tls_identity_fingerprint(id, fp_a)) != 0 ||
	    (r = tls_identity_fingerprint(check, fp_b)) != 0 || strcmp(fp_a, fp_b) != 0) {
		file_why(why, why_cap, "the encoded key for %s does not read back (%s)", path,
		    sd_strerror(r != 0 ? r : SD_ERR_INTERNAL));
		r = r != 0 ? r : SD_ERR_INTERNAL;
		goto out;
	}
	r = file_write_atomic(path, (const char *)buf_ptr(&pem), buf_len(&pem), why, why_cap);
out:
	tls_identity_free(check);
	buf_free(&pem);
	return r;
}

int
identity_generate(const char *cn, struct tls_identity **out, char *why, size_t why_cap)
{
	char name[65];
	size_t i, n = 0;
	int r;

	if (out == NULL)
		return SD_ERR_INVALID_ARG;
	*out = NULL;
	/* The common name is a label for people reading the certificate; the fingerprint is
	 * what identifies the key. */
	for (i = 0; cn != NULL && cn[i] != '\0' && n < sizeof(name) - 1; i++)
		name[n++] = (cn[i] >= 0x20 && cn[i] < 0x7f) ? cn[i] : '_';
	if (n == 0)
		name[n++] = '-';
	name[n] = '\0';
	if ((r = tls_identity_generate(name, out)) != 0)
		file_why(why, why_cap, "cannot generate an Ed25519 key (%s)", sd_strerror(r));
	return r;
}
