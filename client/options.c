/* options.c: command-line parsing for sealdrop-client and the --help text, which is where the
 * exit statuses and the packet layouts for other servers are documented. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../protocol/err.h"
#include "known_servers.h"

enum {
	OPT_TRANSFER = 256,
	OPT_FILE,
	OPT_SERVER,
	OPT_NAME,
	OPT_CONNECT_TIMEOUT,
	OPT_TIMEOUT,
	OPT_PACKET_SIZE,
	OPT_FIRST_PACKET,
	OPT_PAD_LAST,
	OPT_PER_PACKET,
	OPT_SINGLE_PACKET,
	OPT_PACED,
	OPT_VERSION,
	OPT_PROTOCOL,
	OPT_SERVER_KEY,
	OPT_COMPRESS,
	OPT_RETRIES,
	OPT_JSON,
};

static const struct option long_options[] = {
	{ "transfer", required_argument, NULL, OPT_TRANSFER },
	{ "file", required_argument, NULL, OPT_FILE },
	{ "server", required_argument, NULL, OPT_SERVER },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "packet-size", required_argument, NULL, OPT_PACKET_SIZE },
	{ "first-packet", required_argument, NULL, OPT_FIRST_PACKET },
	{ "pad-last-packet", no_argument, NULL, OPT_PAD_LAST },
	{ "per-packet-encryption", no_argument, NULL, OPT_PER_PACKET },
	{ "single-packet", no_argument, NULL, OPT_SINGLE_PACKET },
	{ "paced", no_argument, NULL, OPT_PACED },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "server-key", required_argument, NULL, OPT_SERVER_KEY },
	{ "compress", required_argument, NULL, OPT_COMPRESS },
	{ "retries", required_argument, NULL, OPT_RETRIES },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "output", required_argument, NULL, 'o' },
	{ NULL, 0, NULL, 0 },
};

void
options_usage(FILE *f)
{
	fprintf(f,
"Usage: sealdrop-client [options] [send [FILE] | list | get NAME [-o PATH] | rm NAME]\n"
"Sends one file to a sealdrop server: over version 4 (TLS 1.3, pinned keys, resumable,\n"
"SHA-256 checked) when the server speaks it, else encrypted with the version-3 protocol.\n"
"With no command it reads transfer.info in the working directory:\n"
"  line 1 host:port ([v6address]:port for IPv6), line 2 your name (1-100 bytes of UTF-8,\n"
"  no control characters), line 3 the file to send. First run: registers and writes\n"
"  me.info and priv.key (mode 0600), and me.key (version 4). Later runs: reconnect with\n"
"  the ID and keys stored there.\n"
"\n"
"Commands (list, get and rm need a version-4 server; the server and name still come\n"
"from transfer.info or --server/--name):\n"
"  send [FILE]            send FILE (default: transfer.info line 3); the default command\n"
"  list                   the files the server holds for you (a table; --json for JSON)\n"
"  get NAME [-o PATH]     download NAME to PATH (default ./NAME) through PATH.part,\n"
"                         SHA-256 checked; an interrupted download resumes from .part\n"
"  rm NAME                delete NAME on the server\n"
"\n"
"Options:\n"
"  -C DIR                 work in DIR (transfer.info, me.info, priv.key are there)\n"
"  --transfer FILE        read FILE instead of transfer.info\n"
"  --server HOST:PORT     override transfer.info line 1\n"
"  --name NAME            override transfer.info line 2\n"
"  --file PATH            override transfer.info line 3\n"
"  --connect-timeout SEC  give up connecting after SEC seconds (default %d)\n"
"  --timeout SEC          give up when the server sends nothing for SEC seconds\n"
"                         (default %d)\n"
"  -q, --quiet            only errors; no progress bar\n"
"  --protocol auto|3|4    auto (default): TLS (version 4) first, version 3 if the server\n"
"                         does not speak it, unless known_servers pins that server (then\n"
"                         exit 10); 4: version 4 only; 3: version 3 only, never TLS\n"
"  --server-key SHA256:.. accept only a server with this fingerprint (what\n"
"                         sealdrop-server --fingerprint prints); known_servers is then\n"
"                         neither read nor written\n"
"  --compress auto|yes|no deflate upload chunks: auto (default) while chunks shrink by\n"
"                         10 %% or more and deflate outpaces the connection\n"
"  --retries N            version 4: reconnect and resume up to N times after a dropped\n"
"                         connection, waiting 1, 2, 4 ... s (default %u, 0: never)\n"
"  --json                 list: print JSON instead of a table\n"
"  -o, --output PATH      get: where to write the file\n"
"  -v, --verbose          log every request and response; with version 4 also the TLS\n"
"                         version, cipher suite and both key fingerprints\n"
"  -h, --help             this text\n"
"  --version              print the version\n"
"\n"
"Packet layout (servers disagree on 828 packets; the default suits most):\n"
"  default                 the file is one AES-CBC stream, its ciphertext cut into\n"
"                          %u-byte packets numbered 1..N, the last one shorter\n"
"                          (servers that reassemble by content_size; ours, Python ones)\n"
"  --packet-size N         N ciphertext bytes per packet (1..%u); for servers that read\n"
"                          fixed-size packets, e.g. --packet-size 1024 or 8192\n"
"  --first-packet 0|1      number packets from 0 (servers built for 0-based clients)\n"
"  --pad-last-packet       every packet exactly N bytes, the last zero-filled past\n"
"                          content_size (servers that always read N bytes per packet)\n"
"  --per-packet-encryption each N-byte plaintext chunk encrypted on its own,\n"
"                          content_size = that packet's ciphertext size, total_packets\n"
"                          written before packet_number (servers built for such clients)\n"
"  --single-packet         the whole ciphertext in one packet (1 of 1)\n"
"  --paced                 each packet in a write of its own, sent only when the server\n"
"                          has acknowledged the previous one, so that it arrives whole\n"
"                          (servers that read a request with one recv() of its size and\n"
"                          fail on a short read); with --packet-size 1024 a packet is\n"
"                          one TCP segment on any Ethernet path\n"
"\n"
"Exit status:\n"
"  0  done: the server confirmed the file (CRC, or SHA-256 in version 4), or the\n"
"     command succeeded\n"
"  1  bad command line\n"
"  2  transfer.info missing or malformed (bad host:port, name over 100 characters ...)\n"
"  3  me.info or priv.key unreadable or malformed, or cannot be written\n"
"  4  the file cannot be read, its name is one the server refuses, it is too large\n"
"     (4 GiB - 17 bytes at most), or it changed while it was sent\n"
"  5  cannot resolve or connect to the server (connect timeout)\n"
"  6  connection lost, or the server stopped answering (read timeout)\n"
"  7  the server answered a step with errors 4 times (a try and 3 retries; version 4:\n"
"     ERROR 8 or 9 on every --retries, any other ERROR at once), or broke the protocol\n"
"  8  the CRC did not match 4 times (902 sent)\n"
"  9  the server refused the registration (name taken or invalid)\n"
"  10 the server's key is not the one pinned in known_servers or by --server-key (nothing\n"
"     was sent), or a server pinned in known_servers did not speak version 4\n"
"  11 get, rm: the server has no file of that name\n"
"Version 4 uses the same statuses otherwise: 3 also for me.key and known_servers (and a\n"
"me.key the server knows as another account than me.info's), 4 for a\n"
"download that cannot be written, 7 for a server error reply, 8 for a SHA-256 or CRC that\n"
"does not match.\n"
"\n"
"Files (version 4): me.key (PEM: the Ed25519 key, then its certificate; mode 0600) beside\n"
"me.info; known_servers: one line 'HOST:PORT SHA256:...' per server, written on first\n"
"contact (trust on first use); when a server's key changes on purpose, remove its line.\n",
	    DEFAULT_CONNECT_TIMEOUT_MS / 1000, DEFAULT_TIMEOUT_MS / 1000, DEFAULT_RETRIES,
	    DEFAULT_PACKET_SIZE, PACKET_SIZE_MAX);
}

/* Seconds (fractions allowed) to milliseconds, 1 ms .. TIMEOUT_MAX_MS. */
static int
parse_seconds(const char *s, int *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0.0 ||
	    v * 1000.0 > (double)TIMEOUT_MAX_MS)
		return -1;
	*ms = (int)(v * 1000.0);
	if (*ms < 1)
		*ms = 1;
	return 0;
}

static int
parse_u32(const char *s, unsigned long lo, unsigned long hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* The words after the options (getopt moved them to the end): the command and its operand. */
static int
parse_command(int n, char **w, struct client_options *o, char *why, size_t why_cap)
{
	int want;

	if (n == 0) {
		o->command = CMD_SEND;
		want = 0;
	} else if (strcmp(w[0], "send") == 0) {
		o->command = CMD_SEND;
		want = n > 1 ? 1 : 0;
	} else if (strcmp(w[0], "list") == 0) {
		o->command = CMD_LIST;
		want = 0;
	} else if (strcmp(w[0], "get") == 0) {
		o->command = CMD_GET;
		want = 1;
	} else if (strcmp(w[0], "rm") == 0) {
		o->command = CMD_RM;
		want = 1;
	} else {
		snprintf(why, why_cap, "unknown command '%.80s' (send, list, get, rm)", w[0]);
		return SD_ERR_INVALID_ARG;
	}
	if (n > 0 && n - 1 != want) {
		snprintf(why, why_cap, "%s takes %s", w[0], o->command == CMD_SEND ?
		    "at most one file" : want == 1 ? "one name" : "no argument");
		return SD_ERR_INVALID_ARG;
	}
	if (want == 1) {
		if (w[1][0] == '\0') {
			snprintf(why, why_cap, "%s: the name is empty", w[0]);
			return SD_ERR_INVALID_ARG;
		}
		o->arg = w[1];
	}
	if (o->output != NULL && o->command != CMD_GET) {
		snprintf(why, why_cap, "-o/--output goes with get");
		return SD_ERR_INVALID_ARG;
	}
	if (o->output != NULL && o->output[0] == '\0') {
		snprintf(why, why_cap, "-o/--output: the path is empty");
		return SD_ERR_INVALID_ARG;
	}
	if (o->json && o->command != CMD_LIST) {
		snprintf(why, why_cap, "--json goes with list");
		return SD_ERR_INVALID_ARG;
	}
	if (o->command != CMD_SEND && o->protocol == PROTO_V3) {
		snprintf(why, why_cap, "%s needs version 4; it cannot run with --protocol 3", w[0]);
		return SD_ERR_INVALID_ARG;
	}
	if (o->command == CMD_SEND && o->arg != NULL && o->file != NULL) {
		snprintf(why, why_cap, "send FILE and --file exclude each other");
		return SD_ERR_INVALID_ARG;
	}
	return 0;
}

int
options_parse(int argc, char **argv, struct client_options *o, char *why, size_t why_cap)
{
	uint32_t v;
	int c, r;

	memset(o, 0, sizeof(*o));
	o->transfer = "transfer.info";
	o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->packet_size = DEFAULT_PACKET_SIZE;
	o->first_packet = 1;
	o->retries = DEFAULT_RETRIES;
	optind = 0;  /* glibc: 0 restarts scanning from scratch */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":C:qvho:", long_options, NULL)) != -1) {
		switch (c) {
		case 'C': o->dir = optarg; break;
		case OPT_TRANSFER: o->transfer = optarg; break;
		case OPT_FILE: o->file = optarg; break;
		case OPT_SERVER: o->server = optarg; break;
		case OPT_NAME: o->name = optarg; break;
		case 'q': o->quiet = 1; break;
		case 'v': o->verbose = 1; break;
		case 'h': o->help = 1; break;
		case OPT_VERSION: o->version = 1; break;
		case OPT_CONNECT_TIMEOUT:
			if (parse_seconds(optarg, &o->connect_timeout_ms) != 0) {
				snprintf(why, why_cap, "--connect-timeout: '%s' is not a number of "
				    "seconds", optarg);
				return SD_ERR_INVALID_ARG;
			}
			break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, &o->timeout_ms) != 0) {
				snprintf(why, why_cap, "--timeout: '%s' is not a number of seconds",
				    optarg);
				return SD_ERR_INVALID_ARG;
			}
			break;
		case OPT_PACKET_SIZE:
			if (parse_u32(optarg, 1, PACKET_SIZE_MAX, &o->packet_size) != 0) {
				snprintf(why, why_cap, "--packet-size: '%s' is not 1..%u", optarg,
				    PACKET_SIZE_MAX);
				return SD_ERR_INVALID_ARG;
			}
			o->packet_size_set = 1;
			break;
		case OPT_FIRST_PACKET:
			if (parse_u32(optarg, 0, 1, &v) != 0) {
				snprintf(why, why_cap, "--first-packet: '%s' is not 0 or 1", optarg);
				return SD_ERR_INVALID_ARG;
			}
			o->first_packet = (int)v;
			break;
		case 'o': o->output = optarg; break;
		case OPT_JSON: o->json = 1; break;
		case OPT_PROTOCOL:
			if (strcmp(optarg, "auto") == 0)
				o->protocol = PROTO_AUTO;
			else if (strcmp(optarg, "3") == 0)
				o->protocol = PROTO_V3;
			else if (strcmp(optarg, "4") == 0)
				o->protocol = PROTO_V4;
			else {
				snprintf(why, why_cap, "--protocol: '%s' is not auto, 3 or 4", optarg);
				return SD_ERR_INVALID_ARG;
			}
			break;
		case OPT_SERVER_KEY:
			if (fingerprint_check(optarg) != 0) {
				snprintf(why, why_cap, "--server-key: '%.80s' is not SHA256: followed by "
				    "%u base64 characters", optarg, FINGERPRINT_B64_LEN);
				return SD_ERR_INVALID_ARG;
			}
			o->server_key = optarg;
			break;
		case OPT_COMPRESS:
			if (strcmp(optarg, "auto") == 0)
				o->compress = COMPRESS_AUTO;
			else if (strcmp(optarg, "yes") == 0)
				o->compress = COMPRESS_YES;
			else if (strcmp(optarg, "no") == 0)
				o->compress = COMPRESS_NO;
			else {
				snprintf(why, why_cap, "--compress: '%s' is not auto, yes or no", optarg);
				return SD_ERR_INVALID_ARG;
			}
			break;
		case OPT_RETRIES:
			if (parse_u32(optarg, 0, RETRIES_MAX, &o->retries) != 0) {
				snprintf(why, why_cap, "--retries: '%s' is not 0..%u", optarg, RETRIES_MAX);
				return SD_ERR_INVALID_ARG;
			}
			break;
		case OPT_PAD_LAST: o->pad_last_packet = 1; break;
		case OPT_PER_PACKET: o->per_packet = 1; break;
		case OPT_SINGLE_PACKET: o->single_packet = 1; break;
		case OPT_PACED: o->paced = 1; break;
		case ':':
			snprintf(why, why_cap, "%s needs an argument", argv[optind - 1]);
			return SD_ERR_INVALID_ARG;
		default:
			if (optopt != 0)
				snprintf(why, why_cap, "unknown option -%c", optopt);
			else
				snprintf(why, why_cap, "unknown option %s", argv[optind - 1]);
			return SD_ERR_INVALID_ARG;
		}
	}
	if ((r = parse_command(argc - optind, argv + optind, o, why, why_cap)) != 0)
		return r;
	if (o->quiet && o->verbose) {
		snprintf(why, why_cap, "--quiet and --verbose exclude each other");
		return SD_ERR_INVALID_ARG;
	}
	if (o->single_packet && (o->per_packet || o->pad_last_packet || o->packet_size_set)) {
		snprintf(why, why_cap, "--single-packet excludes --packet-size, --pad-last-packet "
		    "and --per-packet-encryption");
		return SD_ERR_INVALID_ARG;
	}
	if (o->per_packet && o->pad_last_packet) {
		snprintf(why, why_cap, "--per-packet-encryption excludes --pad-last-packet");
		return SD_ERR_INVALID_ARG;
	}
	return 0;
}
