/* main.c: sealdrop-client: reads transfer.info (and options), then runs one session that
 * registers or reconnects and sends the file. Exit statuses are listed in options.h / --help. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../protocol/crypto.h"
#include "../protocol/err.h"
#include "files.h"
#include "log.h"
#include "options.h"
#include "session.h"
#include "transfer.h"
#include "v4.h"

#ifndef SEALDROP_VERSION
#define SEALDROP_VERSION "0.0.0"
#endif

int
main(int argc, char **argv)
{
	struct client_options o;
	struct transfer_info ti;
	struct session_config cfg;
	struct v4_config v4;
	char why[WHY_MAX];
	unsigned skip = 0;
	int r, not_v4 = 0;

	why[0] = '\0';
	if (options_parse(argc, argv, &o, why, sizeof(why)) != 0) {
		log_error("%s (try --help)", why);
		return CX_USAGE;
	}
	if (o.help) {
		options_usage(stdout);
		return CX_OK;
	}
	if (o.version) {
		printf("sealdrop-client %s\n", SEALDROP_VERSION);
		return CX_OK;
	}
	log_set_level(o.quiet ? LOG_QUIET : o.verbose ? LOG_VERBOSE : LOG_NORMAL);
	/* A server that closes while we send must give an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (o.dir != NULL && chdir(o.dir) != 0) {
		log_fatal("cannot work in %s: %s", o.dir, strerror(errno));
		return CX_USAGE;
	}

	if (o.server != NULL)
		skip |= TRANSFER_SKIP_SERVER;
	if (o.name != NULL)
		skip |= TRANSFER_SKIP_NAME;
	if (o.command == CMD_SEND && o.arg != NULL)
		o.file = o.arg;
	/* Only sending needs line 3. */
	if (o.file != NULL || o.command != CMD_SEND)
		skip |= TRANSFER_SKIP_FILE;
	memset(&ti, 0, sizeof(ti));
	if (skip != (TRANSFER_SKIP_SERVER | TRANSFER_SKIP_NAME | TRANSFER_SKIP_FILE)) {
		r = transfer_info_load(o.transfer, skip, &ti, why, sizeof(why));
		if (r != 0) {
			if (r == SD_ERR_NOT_FOUND || r == SD_ERR_IO || r == SD_ERR_TOO_LARGE)
				log_fatal("%s", why);
			else
				log_fatal("%s is malformed: %s", o.transfer, why);
			return CX_TRANSFER_INFO;
		}
	}
	if (o.server != NULL && transfer_server_parse(o.server, &ti, why, sizeof(why)) != 0) {
		log_fatal("--server: %s", why);
		return CX_TRANSFER_INFO;
	}
	if (o.name != NULL) {
		if (transfer_name_check(o.name, why, sizeof(why)) != 0) {
			log_fatal("--name: %s", why);
			return CX_TRANSFER_INFO;
		}
		snprintf(ti.name, sizeof(ti.name), "%s", o.name);
	}
	if (o.file != NULL) {
		if (strlen(o.file) == 0 || strlen(o.file) > TRANSFER_PATH_MAX) {
			log_fatal("--file: the path is empty or too long");
			return CX_TRANSFER_INFO;
		}
		snprintf(ti.file_path, sizeof(ti.file_path), "%s", o.file);
	}

	/* A name the server would refuse fails here, before any connection. */
	if (o.command == CMD_SEND && transfer_file_check(ti.file_path, why, sizeof(why)) != 0) {
		log_fatal("%s", why);
		return CX_FILE;
	}
	if (crypto_init() != 0) {
		log_fatal("cannot initialise libgcrypt");
		return CX_ME_INFO;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.host = ti.host;
	cfg.port = ti.port;
	cfg.name = ti.name;
	cfg.file_path = ti.file_path;
	cfg.me_path = "me.info";
	cfg.priv_path = "priv.key";
	cfg.connect_timeout_ms = o.connect_timeout_ms;
	cfg.timeout_ms = o.timeout_ms;
	cfg.packet_size = o.packet_size;
	cfg.packet_size_fixed = o.packet_size_set;
	cfg.first_packet = o.first_packet;
	cfg.pad_last_packet = o.pad_last_packet;
	cfg.per_packet = o.per_packet;
	cfg.single_packet = o.single_packet;
	cfg.paced = o.paced;
	cfg.progress = !o.quiet && isatty(STDERR_FILENO);
	if (o.protocol != PROTO_V3) {
		memset(&v4, 0, sizeof(v4));
		v4.host = ti.host;
		v4.port = ti.port;
		v4.name = ti.name;
		v4.me_path = "me.info";
		v4.priv_path = "priv.key";
		v4.key_path = "me.key";
		v4.known_path = "known_servers";
		v4.transfer_path = o.transfer;
		v4.server_key = o.server_key;
		v4.connect_timeout_ms = o.connect_timeout_ms;
		v4.timeout_ms = o.timeout_ms;
		v4.retries = o.retries;
		v4.command = o.command;
		v4.file_path = ti.file_path;
		v4.arg = o.arg;
		v4.output = o.output;
		v4.json = o.json;
		v4.compress = o.compress;
		v4.progress = cfg.progress;
		r = v4_run(&v4, o.protocol == PROTO_AUTO, &not_v4);
		if (!not_v4)
			return r;
		if (o.command != CMD_SEND) {
			log_fatal("%s:%s speaks only version 3, which has no %s", ti.host, ti.port,
			    o.command == CMD_LIST ? "list" : o.command == CMD_GET ? "get" : "rm");
			return CX_SERVER;
		}
	}
	return session_run(&cfg);
}
