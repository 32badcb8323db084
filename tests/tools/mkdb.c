/* mkdb.c: fills a sealdrop database through the db API (db/db.h), so that tests of the
 * inspect tool need no server. Usage: mkdb DB < script. One command a line, fields split by
 * tabs; in a field \xNN is that byte, \\ a backslash, \t a tab, \n a newline:
 *   client NAME IDHEX [PUBKEYHEX|-] [AESHEX|-]
 *   client4 NAME IDHEX PUBKEYHEX FINGERPRINT       (a version-4 REGISTER)
 *   bind IDHEX FINGERPRINT                         (a version-4 LINK + PROVE)
 *   file IDHEX FILENAME PATHNAME SIZE CRC VERIFIED(0|1) [UPLOADED_UNIX_SECONDS|0] [SHA256HEX]
 *   commit IDHEX FILENAME TEMPPATH PATHNAME SIZE CRC VERIFIED(0|1) [SHA256HEX|-]
 *   upload IDHEX FILENAME SIZE OFFSET TEMPPATH EXPIRES_UNIX_SECONDS
 *   touch IDHEX
 * Exit status 0, or 1 with "mkdb: line N: reason" on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../db/db.h"
#include "../../protocol/err.h"
#include "../../protocol/hex.h"

#define LINE_MAX_BYTES 4096
#define MAX_FIELDS 10

/* Undoes the escapes of a field in place. */
static int
unescape(char *s)
{
	char *o = s;
	uint8_t b;

	while (*s != '\0') {
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		s++;
		if (*s == '\\' || *s == 't' || *s == 'n') {
			*o++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : '\\';
			s++;
		} else if (*s == 'x' && hex_decode(s + 1, 2, &b, 1) == 0 && b != 0) {
			*o++ = (char)b;
			s += 3;
		} else
			return -1;
	}
	*o = '\0';
	return 0;
}

/* Hex text of exactly n bytes (n == 0: any length up to cap, *len set). */
static int
unhex(const char *s, uint8_t *out, size_t n, size_t cap, size_t *len)
{
	size_t k = strlen(s);

	if (k % 2 != 0 || (n != 0 && k != 2 * n) || k / 2 > cap || k == 0)
		return -1;
	if (hex_decode(s, k, out, k / 2) != 0)
		return -1;
	if (len != NULL)
		*len = k / 2;
	return 0;
}

static int
run_line(struct db *db, char **f, int nf, const char **why)
{
	uint8_t id[CLIENT_ID_SIZE], key[PUBLIC_KEY_SIZE], aes[AES_KEY_SIZE];
	struct db_file file;
	struct db_commit commit;
	struct db_upload upload;
	size_t keylen;
	int r;

	*why = "bad fields";
	if (strcmp(f[0], "client") == 0 && nf >= 3 && nf <= 5) {
		if (unhex(f[2], id, CLIENT_ID_SIZE, CLIENT_ID_SIZE, NULL) != 0)
			return -1;
		if ((r = db_client_register(db, f[1], id)) != 0)
			goto db_fail;
		if (nf >= 4 && strcmp(f[3], "-") != 0) {
			if (unhex(f[3], key, 0, sizeof(key), &keylen) != 0)
				return -1;
			if ((r = db_client_set_public_key(db, id, key, keylen)) != 0)
				goto db_fail;
		}
		if (nf == 5 && strcmp(f[4], "-") != 0) {
			if (unhex(f[4], aes, AES_KEY_SIZE, AES_KEY_SIZE, NULL) != 0)
				return -1;
			if ((r = db_client_set_aes_key(db, id, aes)) != 0)
				goto db_fail;
		}
		return 0;
	}
	if (strcmp(f[0], "client4") == 0 && nf == 5) {
		if (unhex(f[2], id, CLIENT_ID_SIZE, CLIENT_ID_SIZE, NULL) != 0 ||
		    unhex(f[3], key, 0, sizeof(key), &keylen) != 0)
			return -1;
		if ((r = db_client_register_v4(db, f[1], id, key, keylen, f[4])) != 0)
			goto db_fail;
		return 0;
	}
	if (strcmp(f[0], "bind") == 0 && nf == 3) {
		if (unhex(f[1], id, CLIENT_ID_SIZE, CLIENT_ID_SIZE, NULL) != 0)
			return -1;
		if ((r = db_client_bind_fingerprint(db, id, f[2])) != 0)
			goto db_fail;
		return 0;
	}
	if (strcmp(f[0], "commit") == 0 && (nf == 8 || nf == 9)) {
		memset(&commit, 0, sizeof(commit));
		if (unhex(f[1], commit.owner, CLIENT_ID_SIZE, CLIENT_ID_SIZE, NULL) != 0 ||
		    strlen(f[2]) >= sizeof(commit.file_name) ||
		    strlen(f[3]) >= sizeof(commit.temp_path) ||
		    strlen(f[4]) >= sizeof(commit.path_name))
			return -1;
		strcpy(commit.file_name, f[2]);
		strcpy(commit.temp_path, f[3]);
		strcpy(commit.path_name, f[4]);
		commit.size = strtoull(f[5], NULL, 10);
		commit.crc = (uint32_t)strtoul(f[6], NULL, 10);
		commit.verified = strcmp(f[7], "1") == 0;
		if (nf == 9 && strcmp(f[8], "-") != 0) {
			if (unhex(f[8], commit.sha256, DB_SHA256_SIZE, DB_SHA256_SIZE, NULL) != 0)
				return -1;
			commit.has_sha256 = 1;
		}
		if ((r = db_commit_add(db, &commit)) != 0)
			goto db_fail;
		return 0;
	}
	if (strcmp(f[0], "upload") == 0 && nf == 7) {
		memset(&upload, 0, sizeof(upload));
		if (unhex(f[1], upload.owner, CLIENT_ID_SIZE, CLIENT_ID_SIZE, NULL) != 0 ||
		    strlen(f[2]) >= sizeof(upload.file_name) ||
		    strlen(f[5]) >= sizeof(upload.temp_path))
			return -1;
		strcpy(upload.file_name, f[2]);
		upload.size = strtoull(f[3], NULL, 10);
		upload.offset = strtoull(f[4], NULL, 10);
		strcpy(upload.temp_path, f[5]);
		upload.expires = strtoll(f[6], NULL, 10);
		if ((r = db_upload_put(db, &upload)) != 0)
			goto db_fail;
		return 0;
	}
	if (strcmp(f[0], "file") == 0 && nf >= 7 && nf <= 9) {
		memset(&file, 0, sizeof(file));
		if (unhex(f[1], file.owner, CLIENT_ID_SIZE, CLIENT_ID_SIZE, NULL) != 0 ||
		    strlen(f[2]) >= sizeof(file.file_name) || strlen(f[3]) >= sizeof(file.path_name))
			return -1;
		strcpy(file.file_name, f[2]);
		strcpy(file.path_name, f[3]);
		file.size = strtoull(f[4], NULL, 10);
		file.crc = (uint32_t)strtoul(f[5], NULL, 10);
		file.uploaded = nf >= 8 ? strtoll(f[7], NULL, 10) : 0;
		if (nf == 9) {
			if (unhex(f[8], file.sha256, DB_SHA256_SIZE, DB_SHA256_SIZE, NULL) != 0)
				return -1;
			file.has_sha256 = 1;
		}
		if ((r = db_file_record(db, &file)) != 0 ||
		    (strcmp(f[6], "1") == 0 &&
		    (r = db_file_set_verified(db, file.owner, file.file_name, 1)) != 0))
			goto db_fail;
		return 0;
	}
	if (strcmp(f[0], "touch") == 0 && nf == 2) {
		if (unhex(f[1], id, CLIENT_ID_SIZE, CLIENT_ID_SIZE, NULL) != 0)
			return -1;
		if ((r = db_client_touch(db, id)) != 0)
			goto db_fail;
		return 0;
	}
	*why = "unknown command or wrong number of fields";
	return -1;
db_fail:
	*why = sd_strerror(r);
	return -1;
}

int
main(int argc, char **argv)
{
	struct db *db = NULL;
	char line[LINE_MAX_BYTES], *f[MAX_FIELDS], *p;
	const char *why;
	int r, nf, lineno = 0, status = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: mkdb DB < script\n");
		return 2;
	}
	if ((r = db_open(argv[1], DB_READ_WRITE, &db)) != 0) {
		fprintf(stderr, "mkdb: %s: %s\n", argv[1], sd_strerror(r));
		return 1;
	}
	while (fgets(line, sizeof(line), stdin) != NULL) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		nf = 0;
		for (p = line; nf < MAX_FIELDS; ) {
			f[nf++] = p;
			if ((p = strchr(p, '\t')) == NULL)
				break;
			*p++ = '\0';
		}
		why = "bad escape";
		for (r = 0; r < nf; r++)
			if (unescape(f[r]) != 0)
				goto fail;
		if (run_line(db, f, nf, &why) != 0)
			goto fail;
	}
	status = 0;
	goto out;
fail:
	fprintf(stderr, "mkdb: line %d: %s\n", lineno, why);
out:
	db_close(db);
	return status;
}
