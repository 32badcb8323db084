/* options.c: command-line parsing for sealdrop-client and the --help text, which is where the
 * exit statuses and the packet layouts for other servers are documented. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../protocol/err.h"

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
	{ NULL, 0, NULL, 0 },
};

void
options_usage(FILE *f)
{
	fprintf(f,
"Usage: sealdrop-client [options]\n"
"Sends one file, encrypted, to a server of the version-3 upload protocol.\n"
"With no options it reads transfer.info in the working directory:\n"
"  line 1 host:port ([v6address]:port for IPv6), line 2 your name (1-100 bytes of UTF-8,\n"
"  no control characters), line 3 the file to send. First run: registers and writes\n"
"  me.info and priv.key (mode 0600). Later runs: reconnect with the ID and key in me.info.\n"
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
"  -v, --verbose          log every request and response\n"
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
"  0  the server confirmed the file's CRC\n"
"  1  bad command line\n"
"  2  transfer.info missing or malformed (bad host:port, name over 100 characters ...)\n"
"  3  me.info or priv.key unreadable or malformed, or cannot be written\n"
"  4  the file cannot be read, its name is one the server refuses, it is too large\n"
"     (4 GiB - 17 bytes at most), or it changed while it was sent\n"
"  5  cannot resolve or connect to the server (connect timeout)\n"
"  6  connection lost, or the server stopped answering (read timeout)\n"
"  7  the server answered with errors (1607) 4 times, or broke the protocol\n"
"  8  the CRC did not match 4 times (902 sent)\n"
"  9  the server refused the registration (name taken or invalid)\n",
	    DEFAULT_CONNECT_TIMEOUT_MS / 1000, DEFAULT_TIMEOUT_MS / 1000, DEFAULT_PACKET_SIZE,
	    PACKET_SIZE_MAX);
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

int
options_parse(int argc, char **argv, struct client_options *o, char *why, size_t why_cap)
{
	uint32_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->transfer = "transfer.info";
	o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->packet_size = DEFAULT_PACKET_SIZE;
	o->first_packet = 1;
	optind = 0;  /* glibc: 0 restarts scanning from scratch */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:C:qvh", long_options, NULL)) != -1) {
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
	if (optind < argc) {
		snprintf(why, why_cap, "unexpected argument '%s'", argv[optind]);
		return SD_ERR_INVALID_ARG;
	}
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
