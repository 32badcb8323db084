/* der.c: RSA key DER (SPKI, PKCS#8, PKCS#1) through libtasn1, the only file that calls it.
 * Values are moved between libtasn1 trees and plain big-endian integers (der.h). */
#include "der.h"

#include <libtasn1.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "err.h"

/*
 * The ASN.1 module, compiled in. libtasn1 can only parse definitions text from a file
 * (asn1_parser2tree), and protocol/ touches no files, so the module is given as the node
 * array that asn1_array2tree() takes (the form asn1Parser would generate), written by hand
 * from this text:
 *
 *   SealdropKeys DEFINITIONS IMPLICIT TAGS ::= BEGIN
 *   AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }
 *   SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier,
 *       subjectPublicKey BIT STRING }
 *   RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
 *   PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm AlgorithmIdentifier,
 *       privateKey OCTET STRING }
 *   RSAPrivateKey ::= SEQUENCE { version INTEGER, modulus INTEGER, publicExponent INTEGER,
 *       privateExponent INTEGER, prime1 INTEGER, prime2 INTEGER, exponent1 INTEGER,
 *       exponent2 INTEGER, coefficient INTEGER }
 *   END
 *
 * (PKCS#8 attributes and PKCS#1 multi-prime keys are left out on purpose: no client writes
 * them, so they are rejected.) The type field of a node is an ASN1_ETYPE_* value ORed with
 * flags. libtasn1's public header names the types but not the flags; the flag values below
 * are fixed by its ABI, since every asn1Parser-generated array compiled into a program
 * carries them as plain numbers.
 */
#define NODE_OPTION (1u << 14)   /* an OPTIONAL component */
#define NODE_IMPLICIT (1u << 12) /* module default: IMPLICIT TAGS */
#define NODE_DOWN (1u << 29)     /* the next node is this node's first child */
#define NODE_RIGHT (1u << 30)    /* the node has a next sibling */

static const asn1_static_node key_module[] = {
	{ "SealdropKeys", NODE_DOWN | NODE_IMPLICIT | ASN1_ETYPE_DEFINITIONS, NULL },
	{ NULL, NODE_RIGHT | ASN1_ETYPE_OBJECT_ID, NULL }, /* the module has no OID */
	{ "AlgorithmIdentifier", NODE_DOWN | NODE_RIGHT | ASN1_ETYPE_SEQUENCE, NULL },
	{ "algorithm", NODE_RIGHT | ASN1_ETYPE_OBJECT_ID, NULL },
	{ "parameters", NODE_OPTION | ASN1_ETYPE_ANY, NULL },
	{ "SubjectPublicKeyInfo", NODE_DOWN | NODE_RIGHT | ASN1_ETYPE_SEQUENCE, NULL },
	{ "algorithm", NODE_RIGHT | ASN1_ETYPE_IDENTIFIER, "AlgorithmIdentifier" },
	{ "subjectPublicKey", ASN1_ETYPE_BIT_STRING, NULL },
	{ "RSAPublicKey", NODE_DOWN | NODE_RIGHT | ASN1_ETYPE_SEQUENCE, NULL },
	{ "modulus", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "publicExponent", ASN1_ETYPE_INTEGER, NULL },
	{ "PrivateKeyInfo", NODE_DOWN | NODE_RIGHT | ASN1_ETYPE_SEQUENCE, NULL },
	{ "version", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "privateKeyAlgorithm", NODE_RIGHT | ASN1_ETYPE_IDENTIFIER, "AlgorithmIdentifier" },
	{ "privateKey", ASN1_ETYPE_OCTET_STRING, NULL },
	{ "RSAPrivateKey", NODE_DOWN | ASN1_ETYPE_SEQUENCE, NULL },
	{ "version", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "modulus", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "publicExponent", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "privateExponent", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "prime1", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "prime2", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "exponent1", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "exponent2", NODE_RIGHT | ASN1_ETYPE_INTEGER, NULL },
	{ "coefficient", ASN1_ETYPE_INTEGER, NULL },
	{ NULL, 0, NULL },
};

#define OID_RSA_ENCRYPTION "1.2.840.113549.1.1.1"
static const uint8_t der_null[2] = { 0x05, 0x00 };
/* An encoded RSAPublicKey: two integers of at most DER_NUM_MAX + 1 bytes with headers. */
#define RSA_PUBLIC_DER_MAX (2u * (DER_NUM_MAX + 1u + 4u) + 4u)

/* The definitions tree, built once and shared read-only by every thread. */
static asn1_node definitions;
static int definitions_err;
static pthread_once_t definitions_once = PTHREAD_ONCE_INIT;

static void build_definitions(void)
{
	if (asn1_array2tree(key_module, &definitions, NULL) != ASN1_SUCCESS)
		definitions_err = SD_ERR_INTERNAL;
}

/* A new empty structure of the named type ("SealdropKeys.<type>"). */
static int new_node(const char *type, asn1_node *out)
{
	*out = NULL;
	pthread_once(&definitions_once, build_definitions);
	if (definitions_err != 0)
		return definitions_err;
	if (asn1_create_element(definitions, type, out) != ASN1_SUCCESS)
		return SD_ERR_INTERNAL;
	return 0;
}

/* Frees a structure, zeroing its values since they may be private key numbers. */
static void free_node(asn1_node *node)
{
	if (*node != NULL)
		asn1_delete_structure2(node, ASN1_DELETE_FLAG_ZEROIZE);
}

/* The size of the DER element that opens der[0..n) (a SEQUENCE), from its tag and length,
 * so that bytes after it can be told apart from bytes inside it. */
static int outer_size(const uint8_t *der, size_t n, size_t *size)
{
	long len;
	int lenlen = 0;

	if (n < 2 || der[0] != 0x30)
		return SD_ERR_DER;
	len = asn1_get_length_der(der + 1, (int)(n - 1), &lenlen);
	if (len < 0 || lenlen <= 0)
		return SD_ERR_DER; /* indefinite, or longer than the bytes there are */
	*size = 1 + (size_t)lenlen + (size_t)len;
	return *size <= n ? 0 : SD_ERR_DER;
}

/* Strict DER decode of der[0..n) into node. The element must fill der exactly, unless used is
 * not NULL: then bytes may follow and *used gets the element's size. libtasn1 deletes the
 * node when decoding fails. */
static int decode(asn1_node *node, const uint8_t *der, size_t n, size_t *used)
{
	char err[ASN1_MAX_ERROR_DESCRIPTION_SIZE];
	size_t size = 0;
	int len, r;

	if (n > DER_KEY_MAX_SIZE)
		return SD_ERR_TOO_LARGE;
	if ((r = outer_size(der, n, &size)) != 0)
		return r;
	len = (int)size;
	if (asn1_der_decoding2(node, der, &len, ASN1_DECODE_FLAG_STRICT_DER, err) != ASN1_SUCCESS ||
	    len < 0 || (size_t)len != size)
		return SD_ERR_DER;
	if (used != NULL)
		*used = size;
	else if (size != n)
		return SD_ERR_TRAILING;
	return 0;
}

int der_num_set(struct der_num *num, const uint8_t *bytes, size_t n)
{
	while (n > 0 && bytes[0] == 0) {
		bytes++;
		n--;
	}
	if (n > DER_NUM_MAX)
		return SD_ERR_TOO_LARGE;
	crypto_wipe(num, sizeof(*num));
	if (n > 0)
		memcpy(num->b, bytes, n);
	num->len = n;
	return 0;
}

/* Reads a non-negative INTEGER field in minimal two's complement (as DER requires). */
static int read_num(asn1_node node, const char *name, struct der_num *num)
{
	uint8_t tmp[DER_NUM_MAX + 1];
	int len = (int)sizeof(tmp), r;

	if ((r = asn1_read_value(node, name, tmp, &len)) != ASN1_SUCCESS) {
		r = r == ASN1_MEM_ERROR ? SD_ERR_BAD_KEY : SD_ERR_DER;
		goto out;
	}
	if (len <= 0 || (size_t)len > sizeof(tmp) || (tmp[0] & 0x80) != 0 ||
	    (len > 1 && tmp[0] == 0 && (tmp[1] & 0x80) == 0)) {
		r = len > 0 && (tmp[0] & 0x80) != 0 ? SD_ERR_BAD_KEY : SD_ERR_DER;
		goto out;
	}
	r = der_num_set(num, tmp, (size_t)len) != 0 ? SD_ERR_BAD_KEY : 0;
out:
	crypto_wipe(tmp, sizeof(tmp));
	return r;
}

/* Writes a non-negative integer as a two's complement INTEGER (a zero byte in front when
 * the top bit is set, so the value stays positive). */
static int write_num(asn1_node node, const char *name, const struct der_num *num)
{
	uint8_t tmp[DER_NUM_MAX + 1];
	size_t len = 0;
	int r;

	if (num->len > DER_NUM_MAX)
		return SD_ERR_INVALID_ARG;
	if (num->len == 0 || (num->b[0] & 0x80) != 0)
		tmp[len++] = 0;
	if (num->len > 0)
		memcpy(tmp + len, num->b, num->len);
	len += num->len;
	r = asn1_write_value(node, name, tmp, (int)len) == ASN1_SUCCESS ? 0 : SD_ERR_DER;
	crypto_wipe(tmp, sizeof(tmp));
	return r;
}

/* Checks an AlgorithmIdentifier at prefix ("algorithm" or "privateKeyAlgorithm") names
 * rsaEncryption, with NULL parameters or none. */
static int check_rsa_algorithm(asn1_node node, const char *prefix)
{
	char name[64], oid[64];
	uint8_t params[8];
	int len = (int)sizeof(oid), r;

	snprintf(name, sizeof(name), "%s.algorithm", prefix);
	if (asn1_read_value(node, name, oid, &len) != ASN1_SUCCESS)
		return SD_ERR_BAD_KEY;
	if (len <= 0 || (size_t)len > sizeof(oid))
		return SD_ERR_BAD_KEY;
	oid[sizeof(oid) - 1] = '\0';
	if (strcmp(oid, OID_RSA_ENCRYPTION) != 0)
		return SD_ERR_BAD_KEY;
	snprintf(name, sizeof(name), "%s.parameters", prefix);
	len = (int)sizeof(params);
	r = asn1_read_value(node, name, params, &len);
	if (r == ASN1_ELEMENT_NOT_FOUND || r == ASN1_VALUE_NOT_FOUND)
		return 0;
	if (r != ASN1_SUCCESS || len != (int)sizeof(der_null) ||
	    memcmp(params, der_null, sizeof(der_null)) != 0)
		return SD_ERR_BAD_KEY;
	return 0;
}

static int write_rsa_algorithm(asn1_node node, const char *prefix)
{
	char name[64];

	snprintf(name, sizeof(name), "%s.algorithm", prefix);
	if (asn1_write_value(node, name, OID_RSA_ENCRYPTION, 1) != ASN1_SUCCESS)
		return SD_ERR_DER;
	snprintf(name, sizeof(name), "%s.parameters", prefix);
	if (asn1_write_value(node, name, der_null, (int)sizeof(der_null)) != ASN1_SUCCESS)
		return SD_ERR_DER;
	return 0;
}

/* DER of a whole structure into out[0..cap). */
static int encode(asn1_node node, uint8_t *out, size_t cap, size_t *len)
{
	char err[ASN1_MAX_ERROR_DESCRIPTION_SIZE];
	int n = cap > INT_MAX ? INT_MAX : (int)cap, r;

	*len = 0;
	r = asn1_der_coding(node, "", out, &n, err);
	if (r == ASN1_MEM_ERROR)
		return SD_ERR_FULL;
	if (r != ASN1_SUCCESS || n < 0 || (size_t)n > cap)
		return SD_ERR_DER;
	*len = (size_t)n;
	return 0;
}

int der_spki_decode(const uint8_t *der, size_t n, size_t *used, struct der_rsa_public *out)
{
	asn1_node spki = NULL, rsa = NULL;
	uint8_t bits[RSA_PUBLIC_DER_MAX];
	int nbits = (int)sizeof(bits), r;  /* in: the buffer's size in bytes; out: bits */

	if (der == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	if ((r = new_node("SealdropKeys.SubjectPublicKeyInfo", &spki)) != 0 ||
	    (r = decode(&spki, der, n, used)) != 0 ||
	    (r = check_rsa_algorithm(spki, "algorithm")) != 0)
		goto out;
	/* libtasn1 gives BIT STRING lengths in bits; the key is whole bytes. */
	if (asn1_read_value(spki, "subjectPublicKey", bits, &nbits) != ASN1_SUCCESS ||
	    nbits <= 0 || nbits % 8 != 0 || (size_t)nbits / 8 > sizeof(bits)) {
		r = SD_ERR_BAD_KEY;
		goto out;
	}
	if ((r = new_node("SealdropKeys.RSAPublicKey", &rsa)) != 0 ||
	    (r = decode(&rsa, bits, (size_t)nbits / 8, NULL)) != 0 ||
	    (r = read_num(rsa, "modulus", &out->n)) != 0 ||
	    (r = read_num(rsa, "publicExponent", &out->e)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		memset(out, 0, sizeof(*out));
	free_node(&rsa);
	free_node(&spki);
	return r;
}

int der_spki_encode(const struct der_rsa_public *k, uint8_t *out, size_t cap, size_t *len)
{
	asn1_node spki = NULL, rsa = NULL;
	uint8_t bits[RSA_PUBLIC_DER_MAX];
	size_t blen;
	int r;

	if (k == NULL || out == NULL || len == NULL)
		return SD_ERR_INVALID_ARG;
	*len = 0;
	if ((r = new_node("SealdropKeys.RSAPublicKey", &rsa)) != 0 ||
	    (r = write_num(rsa, "modulus", &k->n)) != 0 ||
	    (r = write_num(rsa, "publicExponent", &k->e)) != 0 ||
	    (r = encode(rsa, bits, sizeof(bits), &blen)) != 0)
		goto out;
	if ((r = new_node("SealdropKeys.SubjectPublicKeyInfo", &spki)) != 0 ||
	    (r = write_rsa_algorithm(spki, "algorithm")) != 0)
		goto out;
	if (asn1_write_value(spki, "subjectPublicKey", bits, (int)(blen * 8)) != ASN1_SUCCESS) {
		r = SD_ERR_DER;
		goto out;
	}
	r = encode(spki, out, cap, len);
out:
	free_node(&rsa);
	free_node(&spki);
	return r;
}

/* Reads the nine PKCS#1 fields of a decoded RSAPrivateKey. */
static int read_pkcs1(asn1_node rsa, struct der_rsa_private *k)
{
	struct der_num version;
	int r;

	if ((r = read_num(rsa, "version", &version)) != 0)
		return r;
	if (version.len != 0)
		return SD_ERR_BAD_KEY; /* only two-prime keys (version 0) */
	if ((r = read_num(rsa, "modulus", &k->n)) != 0 ||
	    (r = read_num(rsa, "publicExponent", &k->e)) != 0 ||
	    (r = read_num(rsa, "privateExponent", &k->d)) != 0 ||
	    (r = read_num(rsa, "prime1", &k->p)) != 0 ||
	    (r = read_num(rsa, "prime2", &k->q)) != 0 ||
	    (r = read_num(rsa, "exponent1", &k->dp)) != 0 ||
	    (r = read_num(rsa, "exponent2", &k->dq)) != 0 ||
	    (r = read_num(rsa, "coefficient", &k->qinv)) != 0)
		return r;
	return 0;
}

/* PKCS#8: the PKCS#1 key sits in the privateKey OCTET STRING. */
static int decode_pkcs8(const uint8_t *der, size_t n, struct der_rsa_private *out)
{
	asn1_node info = NULL, rsa = NULL;
	struct der_num version;
	uint8_t *inner = NULL;
	int len = (int)DER_KEY_MAX_SIZE, r;

	if ((r = new_node("SealdropKeys.PrivateKeyInfo", &info)) != 0 ||
	    (r = decode(&info, der, n, NULL)) != 0 ||
	    (r = read_num(info, "version", &version)) != 0)
		goto out;
	if (version.len != 0) {
		r = SD_ERR_BAD_KEY;
		goto out;
	}
	if ((r = check_rsa_algorithm(info, "privateKeyAlgorithm")) != 0)
		goto out;
	if ((inner = crypto_alloc_secret(DER_KEY_MAX_SIZE)) == NULL) {
		r = SD_ERR_ALLOC;
		goto out;
	}
	if (asn1_read_value(info, "privateKey", inner, &len) != ASN1_SUCCESS || len <= 0 ||
	    (size_t)len > DER_KEY_MAX_SIZE) {
		r = SD_ERR_BAD_KEY;
		goto out;
	}
	if ((r = new_node("SealdropKeys.RSAPrivateKey", &rsa)) != 0 ||
	    (r = decode(&rsa, inner, (size_t)len, NULL)) != 0 ||
	    (r = read_pkcs1(rsa, out)) != 0)
		goto out;
	r = 0;
out:
	crypto_free_secret(inner, DER_KEY_MAX_SIZE);
	free_node(&rsa);
	free_node(&info);
	return r;
}

int der_private_decode(const uint8_t *der, size_t n, struct der_rsa_private *out)
{
	asn1_node rsa = NULL;
	int r;

	if (der == NULL || out == NULL)
		return SD_ERR_INVALID_ARG;
	crypto_wipe(out, sizeof(*out));
	if (n > DER_KEY_MAX_SIZE)
		return SD_ERR_TOO_LARGE;
	/* Both forms open with a SEQUENCE; PKCS#8 has an AlgorithmIdentifier where PKCS#1 has
	 * the modulus, so at most one of the two decodes succeeds. */
	r = decode_pkcs8(der, n, out);
	if (r != SD_ERR_DER)
		goto out; /* a PKCS#8 key, good or with a fault past its structure */
	crypto_wipe(out, sizeof(*out));
	if ((r = new_node("SealdropKeys.RSAPrivateKey", &rsa)) != 0 ||
	    (r = decode(&rsa, der, n, NULL)) != 0 ||
	    (r = read_pkcs1(rsa, out)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		crypto_wipe(out, sizeof(*out));
	free_node(&rsa);
	return r;
}

int der_pkcs1_encode(const struct der_rsa_private *k, uint8_t *out, size_t cap, size_t *len)
{
	static const struct der_num zero = { 0, { 0 } };
	asn1_node rsa = NULL;
	int r;

	if (k == NULL || out == NULL || len == NULL)
		return SD_ERR_INVALID_ARG;
	*len = 0;
	if ((r = new_node("SealdropKeys.RSAPrivateKey", &rsa)) != 0 ||
	    (r = write_num(rsa, "version", &zero)) != 0 ||
	    (r = write_num(rsa, "modulus", &k->n)) != 0 ||
	    (r = write_num(rsa, "publicExponent", &k->e)) != 0 ||
	    (r = write_num(rsa, "privateExponent", &k->d)) != 0 ||
	    (r = write_num(rsa, "prime1", &k->p)) != 0 ||
	    (r = write_num(rsa, "prime2", &k->q)) != 0 ||
	    (r = write_num(rsa, "exponent1", &k->dp)) != 0 ||
	    (r = write_num(rsa, "exponent2", &k->dq)) != 0 ||
	    (r = write_num(rsa, "coefficient", &k->qinv)) != 0 ||
	    (r = encode(rsa, out, cap, len)) != 0)
		goto out;
	r = 0;
out:
	free_node(&rsa);
	return r;
}

int der_pkcs8_encode(const struct der_rsa_private *k, uint8_t *out, size_t cap, size_t *len)
{
	static const struct der_num zero = { 0, { 0 } };
	asn1_node info = NULL;
	uint8_t *inner = NULL;
	size_t inner_len = 0;
	int r;

	if (k == NULL || out == NULL || len == NULL)
		return SD_ERR_INVALID_ARG;
	*len = 0;
	if ((inner = crypto_alloc_secret(DER_KEY_MAX_SIZE)) == NULL)
		return SD_ERR_ALLOC;
	if ((r = der_pkcs1_encode(k, inner, DER_KEY_MAX_SIZE, &inner_len)) != 0 ||
	    (r = new_node("SealdropKeys.PrivateKeyInfo", &info)) != 0 ||
	    (r = write_num(info, "version", &zero)) != 0 ||
	    (r = write_rsa_algorithm(info, "privateKeyAlgorithm")) != 0)
		goto out;
	if (asn1_write_value(info, "privateKey", inner, (int)inner_len) != ASN1_SUCCESS) {
		r = SD_ERR_DER;
		goto out;
	}
	r = encode(info, out, cap, len);
out:
	crypto_free_secret(inner, DER_KEY_MAX_SIZE);
	free_node(&info);
	return r;
}
