/* err.c: the text for each sd_err code, for callers that log (library code never prints). */
#include "err.h"

const char *sd_strerror(int err)
{
	switch (err) {
	case SD_OK: return "success";
	case SD_ERR_INTERNAL: return "internal error";
	case SD_ERR_ALLOC: return "out of memory";
	case SD_ERR_INVALID_ARG: return "invalid argument";
	case SD_ERR_SHORT: return "not enough bytes";
	case SD_ERR_FULL: return "buffer limit reached";
	case SD_ERR_TRAILING: return "trailing bytes after message";
	case SD_ERR_BAD_STRING: return "bad string field";
	case SD_ERR_BAD_SIZE: return "payload size does not fit the code";
	case SD_ERR_UNKNOWN_CODE: return "unknown message code";
	case SD_ERR_TOO_LARGE: return "length over limit";
	case SD_ERR_BAD_FIELD: return "field value out of range";
	case SD_ERR_CRYPTO: return "cryptographic library failure";
	case SD_ERR_BAD_KEY: return "bad key";
	case SD_ERR_BAD_PADDING: return "bad padding";
	case SD_ERR_BAD_BASE64: return "bad base64";
	case SD_ERR_DER: return "bad DER";
	case SD_ERR_NOT_FOUND: return "not found";
	case SD_ERR_EXISTS: return "already exists";
	case SD_ERR_DB: return "database error";
	case SD_ERR_IO: return "I/O error";
	case SD_ERR_SCHEMA: return "not a sealdrop database";
	case SD_ERR_BOUND: return "certificate bound to another account";
	case SD_ERR_WANT_READ: return "would block (wants to read)";
	case SD_ERR_WANT_WRITE: return "would block (wants to write)";
	case SD_ERR_EOF: return "connection closed by peer";
	case SD_ERR_TLS: return "TLS failure";
	case SD_ERR_PEER_KEY: return "peer key does not match the pinned fingerprint";
	case SD_ERR_NOT_TLS: return "peer does not speak TLS";
	case SD_ERR_TAKEN: return "taken over by another holder";
	}
	return "unknown error";
}
