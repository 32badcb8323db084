/* err.h: the one error list of sealdrop. 0 is success, failures are negative codes.
 * Library code (protocol/, db/) returns these and never prints; callers log sd_strerror(). */
#ifndef SD_ERR_H
#define SD_ERR_H

enum sd_err {
	SD_OK = 0,
	SD_ERR_INTERNAL = -1,      /* a broken invariant or an unexpected library failure */
	SD_ERR_ALLOC = -2,         /* out of memory */
	SD_ERR_INVALID_ARG = -3,   /* caller passed something out of contract */
	SD_ERR_SHORT = -4,         /* not enough bytes to read what was asked */
	SD_ERR_FULL = -5,          /* a write would pass the buffer's limit */
	SD_ERR_TRAILING = -6,      /* bytes left over after a complete message */
	SD_ERR_BAD_STRING = -7,    /* string field without NUL, empty, or not allowed */
	SD_ERR_BAD_SIZE = -8,      /* payload size does not fit the message code */
	SD_ERR_UNKNOWN_CODE = -9,  /* request or response code not in the protocol */
	SD_ERR_TOO_LARGE = -10,    /* a length from the wire passes a named limit */
	SD_ERR_BAD_FIELD = -11,    /* a field value is out of range or inconsistent */
	SD_ERR_CRYPTO = -12,       /* libgcrypt failed */
	SD_ERR_BAD_KEY = -13,      /* key material does not parse or has the wrong size */
	SD_ERR_BAD_PADDING = -14,  /* PKCS#7 padding is wrong, or ciphertext not whole blocks */
	SD_ERR_BAD_BASE64 = -15,   /* base64 text does not decode */
	SD_ERR_DER = -16,          /* DER does not parse or encode (libtasn1) */
	SD_ERR_NOT_FOUND = -17,    /* no such record */
	SD_ERR_EXISTS = -18,       /* record exists already (name taken, key already set) */
	SD_ERR_DB = -19,           /* SQLite failed */
	SD_ERR_IO = -20,           /* a system call on a file failed (errno tells more) */
	SD_ERR_SCHEMA = -21,       /* database exists but is not a sealdrop database */
	SD_ERR_BOUND = -22,        /* the certificate is bound to another account already */
	SD_ERR_WANT_READ = -23,    /* would block: call again when the fd is readable */
	SD_ERR_WANT_WRITE = -24,   /* would block: call again when the fd is writable */
	SD_ERR_EOF = -25,          /* the peer closed the connection (cleanly) */
	SD_ERR_TLS = -26,          /* TLS failed: handshake, alert, bad record (GnuTLS) */
	SD_ERR_PEER_KEY = -27,     /* the peer's key fingerprint is not the pinned one */
	SD_ERR_NOT_TLS = -28,      /* the peer answered a TLS hello with something else */
	SD_ERR_TAKEN = -29,        /* another holder took the resource over (a v4 upload's name) */
};

/* A short, static, human-readable description of an sd_err code (never NULL). */
const char *sd_strerror(int err);

#endif
