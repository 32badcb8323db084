/* json_mini.h: a small JSON reader for tests (header-only, static functions), enough to walk
 * the fixture files in place: objects, arrays, strings, integers, true/false/null (numbers with
 * a fraction or exponent are kept as text and read as doubles). Not for untrusted input at
 * scale: it parses a whole file into a tree of malloc'ed nodes.
 *
 * Use:
 *   struct json *root = json_load_file(path);          NULL if missing or not valid JSON
 *   const struct json *runs = json_get(root, "runs");  NULL if absent or root not an object
 *   for (const struct json *r = json_first(runs); r; r = r->next) ...
 *   json_str(json_get(r, "dir"))   json_int(json_get(r, "size"), -1)
 *   json_free(root);
 * Every accessor accepts NULL and passes it on, so chains need one check at the end.
 * Fixture files are found under json_fixtures_dir() ($SEALDROP_FIXTURES, else the default): json_load_fixture("clients/index.json"),
 * json_read_fixture("cryptopp/aes-key.bin", &len) for the binary ones. Hex fields are decoded
 * by protocol/hex.c (json_hex), so test programs link the protocol library. */
#ifndef SD_TEST_JSON_MINI_H
#define SD_TEST_JSON_MINI_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/hex.h"

/* Nesting deeper than this is refused (the parser recurses). */
#define JSON_MAX_DEPTH 64

enum json_type { JSON_NULL, JSON_BOOL, JSON_INT, JSON_REAL, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
	enum json_type type;
	long long i;          /* JSON_INT value; JSON_BOOL 0 or 1 */
	double d;             /* JSON_REAL value (JSON_INT too, converted) */
	char *s;              /* JSON_STRING: decoded UTF-8, NUL-terminated (may hold NULs) */
	size_t slen;          /* JSON_STRING: bytes in s */
	char *key;            /* the member name when this node is inside an object */
	struct json *child;   /* JSON_ARRAY / JSON_OBJECT: first element or member */
	struct json *next;    /* next sibling */
};

struct json_parser {
	const char *p, *end;
	int depth;
};

/* Releases a tree (and its siblings' subtrees if called on a list head via json_free). */
static inline void json_free(struct json *v)
{
	while (v != NULL) {
		struct json *next = v->next;

		json_free(v->child);
		free(v->s);
		free(v->key);
		free(v);
		v = next;
	}
}

static inline void json_skip_ws(struct json_parser *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' ||
	    *jp->p == '\r'))
		jp->p++;
}

static inline int json_hex4(struct json_parser *jp, unsigned *out)
{
	unsigned v = 0;
	int k;

	if (jp->end - jp->p < 4)
		return -1;
	for (k = 0; k < 4; k++) {
		char c = *jp->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Parses a string at jp->p (at its opening quote) into a malloc'ed buffer. */
static inline char *json_parse_string(struct json_parser *jp, size_t *len)
{
	size_t n = 0;
	const char *q;
	char *out;

	if (jp->p >= jp->end || *jp->p != '"')
		return NULL;
	jp->p++;
	/* Find the closing quote: the decoded text is never longer than the source text. */
	for (q = jp->p; q < jp->end && *q != '"'; q++)
		if (*q == '\\' && q + 1 < jp->end)
			q++;
	if ((out = malloc((size_t)(q - jp->p) + 1)) == NULL)
		return NULL;
	while (jp->p < jp->end && *jp->p != '"') {
		unsigned char c = (unsigned char)*jp->p++;
		unsigned u, lo;

		if (c < 0x20)
			goto bad;
		if (c != '\\') {
			out[n++] = (char)c;
			continue;
		}
		if (jp->p >= jp->end)
			goto bad;
		switch (*jp->p++) {
		case '"': out[n++] = '"'; break;
		case '\\': out[n++] = '\\'; break;
		case '/': out[n++] = '/'; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'u':
			if (json_hex4(jp, &u) != 0)
				goto bad;
			if (u >= 0xd800 && u < 0xdc00) {
				/* A surrogate pair: the low half must follow. */
				if (jp->end - jp->p < 6 || jp->p[0] != '\\' || jp->p[1] != 'u')
					goto bad;
				jp->p += 2;
				if (json_hex4(jp, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
					goto bad;
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			} else if (u >= 0xdc00 && u < 0xe000) {
				goto bad;
			}
			/* UTF-8: at most 4 bytes, never more than the 6 or 12 source bytes. */
			if (u < 0x80) {
				out[n++] = (char)u;
			} else if (u < 0x800) {
				out[n++] = (char)(0xc0 | u >> 6);
				out[n++] = (char)(0x80 | (u & 0x3f));
			} else if (u < 0x10000) {
				out[n++] = (char)(0xe0 | u >> 12);
				out[n++] = (char)(0x80 | (u >> 6 & 0x3f));
				out[n++] = (char)(0x80 | (u & 0x3f));
			} else {
				out[n++] = (char)(0xf0 | u >> 18);
				out[n++] = (char)(0x80 | (u >> 12 & 0x3f));
				out[n++] = (char)(0x80 | (u >> 6 & 0x3f));
				out[n++] = (char)(0x80 | (u & 0x3f));
			}
			break;
		default:
			goto bad;
		}
	}
	if (jp->p >= jp->end)
		goto bad;
	jp->p++;  /* closing quote */
	out[n] = '\0';
	*len = n;
	return out;
bad:
	free(out);
	return NULL;
}

static inline struct json *json_parse_value(struct json_parser *jp);

static inline int json_literal(struct json_parser *jp, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
		return -1;
	jp->p += n;
	return 0;
}

static inline int json_parse_number(struct json_parser *jp, struct json *v)
{
	const char *s = jp->p;
	int neg = 0, real = 0;
	unsigned long long acc = 0;
	char tmp[64];
	size_t n;

	if (jp->p < jp->end && *jp->p == '-') {
		neg = 1;
		jp->p++;
	}
	if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
		return -1;
	while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
		unsigned digit = (unsigned)(*jp->p++ - '0');

		if (acc > (0x7fffffffffffffffULL - digit) / 10)
			real = 1;  /* too large for an integer: keep it as a double */
		else
			acc = acc * 10 + digit;
	}
	while (jp->p < jp->end && (*jp->p == '.' || *jp->p == 'e' || *jp->p == 'E' ||
	    *jp->p == '+' || *jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9'))) {
		real = 1;
		jp->p++;
	}
	n = (size_t)(jp->p - s);
	if (n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (real) {
		char *e;

		v->type = JSON_REAL;
		v->d = strtod(tmp, &e);
		if (*e != '\0')
			return -1;
		v->i = (long long)v->d;
	} else {
		v->type = JSON_INT;
		v->i = neg ? -(long long)acc : (long long)acc;
		v->d = (double)v->i;
	}
	return 0;
}

/* Parses the members (object) or elements (array) after the opening bracket. */
static inline int json_parse_items(struct json_parser *jp, struct json *v, char close)
{
	struct json **tail = &v->child;

	json_skip_ws(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		return 0;
	}
	for (;;) {
		char *key = NULL;
		size_t klen;
		struct json *item;

		json_skip_ws(jp);
		if (close == '}') {
			if ((key = json_parse_string(jp, &klen)) == NULL)
				return -1;
			json_skip_ws(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				free(key);
				return -1;
			}
			jp->p++;
		}
		if ((item = json_parse_value(jp)) == NULL) {
			free(key);
			return -1;
		}
		item->key = key;
		*tail = item;
		tail = &item->next;
		json_skip_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return 0;
		}
		return -1;
	}
}

static inline struct json *json_parse_value(struct json_parser *jp)
{
	struct json *v;
	int r = -1;

	if (++jp->depth > JSON_MAX_DEPTH)
		return NULL;
	json_skip_ws(jp);
	if (jp->p >= jp->end || (v = calloc(1, sizeof(*v))) == NULL) {
		jp->depth--;
		return NULL;
	}
	switch (*jp->p) {
	case '{':
		jp->p++;
		v->type = JSON_OBJECT;
		r = json_parse_items(jp, v, '}');
		break;
	case '[':
		jp->p++;
		v->type = JSON_ARRAY;
		r = json_parse_items(jp, v, ']');
		break;
	case '"':
		v->type = JSON_STRING;
		r = (v->s = json_parse_string(jp, &v->slen)) != NULL ? 0 : -1;
		break;
	case 't':
		v->type = JSON_BOOL;
		v->i = 1;
		r = json_literal(jp, "true");
		break;
	case 'f':
		v->type = JSON_BOOL;
		r = json_literal(jp, "false");
		break;
	case 'n':
		v->type = JSON_NULL;
		r = json_literal(jp, "null");
		break;
	default:
		r = json_parse_number(jp, v);
		break;
	}
	jp->depth--;
	if (r != 0) {
		json_free(v);
		return NULL;
	}
	return v;
}

/* Parses len bytes of JSON text (one value, white space around it). NULL if invalid. */
static inline struct json *json_parse(const char *text, size_t len)
{
	struct json_parser jp = { text, text + len, 0 };
	struct json *v;

	if (text == NULL || (v = json_parse_value(&jp)) == NULL)
		return NULL;
	json_skip_ws(&jp);
	if (jp.p != jp.end) {
		json_free(v);
		return NULL;
	}
	return v;
}

/* Reads a whole file into a malloc'ed buffer (NUL-terminated, for convenience); NULL on any
 * failure. *len gets its size. Also useful for the binary fixture files. */
static inline uint8_t *json_read_file(const char *path, size_t *len)
{
	FILE *f;
	uint8_t *data = NULL;
	long size;

	*len = 0;
	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	if ((data = malloc((size_t)size + 1)) == NULL)
		goto out;
	if (fread(data, 1, (size_t)size, f) != (size_t)size) {
		free(data);
		data = NULL;
		goto out;
	}
	data[size] = 0;
	*len = (size_t)size;
out:
	fclose(f);
	return data;
}

static inline struct json *json_load_file(const char *path)
{
	struct json *v;
	uint8_t *text;
	size_t len;

	if ((text = json_read_file(path, &len)) == NULL)
		return NULL;
	v = json_parse((const char *)text, len);
	free(text);
	return v;
}

/* The member named key of an object; NULL if v is not an object or has no such member. */
static inline const struct json *json_get(const struct json *v, const char *key)
{
	const struct json *c;

	if (v == NULL || v->type != JSON_OBJECT || key == NULL)
		return NULL;
	for (c = v->child; c != NULL; c = c->next)
		if (c->key != NULL && strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

/* The first element (array) or member (object); walk on with ->next. */
static inline const struct json *json_first(const struct json *v)
{
	if (v == NULL || (v->type != JSON_ARRAY && v->type != JSON_OBJECT))
		return NULL;
	return v->child;
}

/* Element i of an array (or member i of an object); NULL past the end. */
static inline const struct json *json_at(const struct json *v, size_t i)
{
	const struct json *c = json_first(v);

	while (c != NULL && i-- > 0)
		c = c->next;
	return c;
}

/* Elements of an array or members of an object; 0 for anything else. */
static inline size_t json_count(const struct json *v)
{
	const struct json *c;
	size_t n = 0;

	for (c = json_first(v); c != NULL; c = c->next)
		n++;
	return n;
}

/* The integer value, or dflt if v is not an integer. */
static inline long long json_int(const struct json *v, long long dflt)
{
	return v != NULL && v->type == JSON_INT ? v->i : dflt;
}

/* The string value, or NULL if v is not a string. */
static inline const char *json_str(const struct json *v)
{
	return v != NULL && v->type == JSON_STRING ? v->s : NULL;
}

/* 1 for true, 0 for false, dflt for anything else. */
static inline int json_bool(const struct json *v, int dflt)
{
	return v != NULL && v->type == JSON_BOOL ? (int)v->i : dflt;
}

/* Decodes a hex string value into out (exactly cap bytes expected). 0, or -1 if v is not a
 * string of 2 * cap hex digits (either case). */
static inline int json_hex(const struct json *v, uint8_t *out, size_t cap)
{
	if (v == NULL || v->type != JSON_STRING)
		return -1;
	return hex_decode(v->s, v->slen, out, cap) == 0 ? 0 : -1;
}

/* A non-negative integer value into *out: 0, or -1 if v is anything else. */
static inline int json_u64(const struct json *v, uint64_t *out)
{
	if (v == NULL || v->type != JSON_INT || v->i < 0)
		return -1;
	*out = (uint64_t)v->i;
	return 0;
}

/* The Makefile compiles in the fixtures beside the source tree (../shared/fixtures), so a test
 * program runs on its own, from any folder; $SEALDROP_FIXTURES overrides it. */
#ifndef SEALDROP_FIXTURES_DEFAULT
#define SEALDROP_FIXTURES_DEFAULT "../shared/fixtures"
#endif

/* The fixtures folder: $SEALDROP_FIXTURES if set, else SEALDROP_FIXTURES_DEFAULT. */
static inline const char *json_fixtures_dir(void)
{
	const char *top = getenv("SEALDROP_FIXTURES");

	return top != NULL && *top != '\0' ? top : SEALDROP_FIXTURES_DEFAULT;
}

/* json_fixtures_dir()/rel into out; 0, or -1 if the path is too long. */
static inline int json_fixture_path(char *out, size_t cap, const char *rel)
{
	int n;

	n = snprintf(out, cap, "%s/%s", json_fixtures_dir(), rel);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* A fixture file (see json_fixture_path) as json_read_file() gives it; NULL if missing. */
static inline uint8_t *json_read_fixture(const char *rel, size_t *len)
{
	char path[4096];

	*len = 0;
	if (json_fixture_path(path, sizeof(path), rel) != 0)
		return NULL;
	return json_read_file(path, len);
}

/* A fixture file parsed (see json_load_file); NULL if missing or not valid JSON. */
static inline struct json *json_load_fixture(const char *rel)
{
	char path[4096];

	if (json_fixture_path(path, sizeof(path), rel) != 0)
		return NULL;
	return json_load_file(path);
}

#endif
