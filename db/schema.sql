-- schema.sql: the sealdrop server database, compiled into libsddb as db_schema_sql.
-- Table and column names are those of SPEC.md section 8 so that `sqlite3 defensive.db` works
-- for anyone who knows the protocol; our extra columns come after them. Times are TEXT in UTC
-- ('YYYY-MM-DD HH:MM:SS', from datetime('now')) so that they read well in the sqlite3 shell.

CREATE TABLE IF NOT EXISTS clients (
	ID BLOB(16) PRIMARY KEY NOT NULL CHECK (length(ID) = 16),
	Name TEXT UNIQUE NOT NULL,
	PublicKey BLOB(160),          -- DER SubjectPublicKeyInfo; NULL while registration is pending
	LastSeen timestamp,           -- UTC text, updated on every request of the client
	AESKey BLOB(32)               -- the AES key most recently issued to the client
);

-- One row per (owner, file name). A pending registration that is replaced takes its rows along.
CREATE TABLE IF NOT EXISTS files (
	ID BLOB(16) NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,
	FileName TEXT NOT NULL,       -- the name the client sent
	PathName TEXT NOT NULL,       -- the stored file, relative to the storage folder
	Verified BOOLEAN NOT NULL DEFAULT 0,
	Size INTEGER NOT NULL DEFAULT 0,      -- plaintext bytes
	CRC INTEGER NOT NULL DEFAULT 0,       -- cksum of the plaintext
	Uploaded timestamp,                   -- UTC text
	UNIQUE (ID, FileName)
);

PRAGMA user_version = 1;
