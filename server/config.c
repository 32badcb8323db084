/* config.c: server defaults, port.info and number parsing (SPEC.md 8: a missing or invalid
 * port.info means port 1256; main.c prints the warning). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../protocol/err.h"

/* port.info holds a few digits; anything longer is not a port. */
#define PORT_FILE_MAX 64

void
config_defaults(struct server_config *c)
{
	memset(c, 0, sizeof(*c));
	c->bind_addr = CONFIG_DEFAULT_BIND;
	c->port = CONFIG_DEFAULT_PORT;
	c->db_path = CONFIG_DEFAULT_DB;
	c->storage_dir = CONFIG_DEFAULT_STORAGE;
	c->workers = 0;
	c->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	c->idle_timeout = CONFIG_DEFAULT_IDLE_TIMEOUT;
	c->grace = CONFIG_DEFAULT_GRACE;
	c->max_file_size = CONFIG_DEFAULT_MAX_FILE_SIZE;
	c->max_file_size_v4 = CONFIG_DEFAULT_MAX_FILE_SIZE_V4;
	c->resume_ttl = CONFIG_DEFAULT_RESUME_TTL;
	c->test_corrupt_crc = 0;
	c->pending_ttl = CONFIG_DEFAULT_PENDING_TTL;
	c->max_client_storage = CONFIG_DEFAULT_MAX_CLIENT_STORAGE;
	c->max_client_files = CONFIG_DEFAULT_MAX_CLIENT_FILES;
	c->max_uploads_per_client = CONFIG_DEFAULT_MAX_UPLOADS_PER_CLIENT;
	c->max_registrations = CONFIG_DEFAULT_MAX_REGISTRATIONS;
	c->min_upload_rate = CONFIG_DEFAULT_MIN_UPLOAD_RATE;
	c->min_rate_grace = CONFIG_DEFAULT_MIN_RATE_GRACE;
	c->retry_reply_after_ms = CONFIG_DEFAULT_RETRY_REPLY_AFTER;
}

int
config_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end = NULL;

	/* strtoull accepts a sign and leading blanks; a count must be plain digits. */
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return SD_ERR_BAD_FIELD;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return SD_ERR_BAD_FIELD;
	*out = (uint64_t)v;
	return 0;
}

int
config_read_port_file(const char *path, uint16_t *port)
{
	char text[PORT_FILE_MAX + 1];
	size_t n, start = 0, end;
	uint64_t v;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return SD_ERR_NOT_FOUND;
	n = fread(text, 1, PORT_FILE_MAX + 1, f);
	fclose(f);
	if (n > PORT_FILE_MAX)
		return SD_ERR_BAD_FIELD;
	text[n] = '\0';
	if (strlen(text) != n)  /* a NUL inside */
		return SD_ERR_BAD_FIELD;
	while (start < n && isspace((unsigned char)text[start]))
		start++;
	end = n;
	while (end > start && isspace((unsigned char)text[end - 1]))
		end--;
	text[end] = '\0';
	if (config_parse_u64(text + start, 1, 65535, &v) != 0)
		return SD_ERR_BAD_FIELD;
	*port = (uint16_t)v;
	return 0;
}

unsigned
config_workers(const struct server_config *c)
{
	long n;

	if (c->workers > 0)
		return c->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	if (n > (long)CONFIG_MAX_WORKERS)
		return CONFIG_MAX_WORKERS;
	return (unsigned)n;
}
