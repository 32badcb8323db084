-- schema.sql: the sealdrop server database, compiled into libsddb as db_schema_sql.
-- Table and column names are those of SPEC.md section 8 so that `sqlite3 defensive.db` works
-- for anyone who knows the protocol; our extra columns come after them. Times are TEXT in UTC
-- ('YYYY-MM-DD HH:MM:SS', from datetime('now')) so that they read well in the sqlite3 shell.
--
-- Schema version 2 (PRAGMA user_version). db_open creates it fresh, or upgrades a version-1
-- database (and a reference server's SPEC.md-names-only one) in place in one transaction: it
-- adds the missing columns with ALTER TABLE ADD COLUMN (the same definitions as below, in the
-- same order), then runs this whole file again; every statement here is idempotent.
--   version 1: clients, files (ID, FileName, PathName, Verified, Size, CRC, Uploaded)
--   version 2: clients.Fingerprint (unique), files.SHA256, commits, uploads
-- Comments inside CREATE TABLE are kept in sqlite_master (and shown by `.schema`): short.

-- clients: one row per account. Fingerprint: the version-4 certificate ("SHA256:" and 43
-- base64 characters), NULL when none; unique through the index clients_fingerprint (SQLite
-- cannot add a UNIQUE column, so fresh and upgraded databases both use the index).
CREATE TABLE IF NOT EXISTS clients (
	ID BLOB(16) PRIMARY KEY NOT NULL CHECK (length(ID) = 16),
	Name TEXT UNIQUE NOT NULL,
	PublicKey BLOB(160),          -- DER SubjectPublicKeyInfo; NULL while registration is pending
	LastSeen timestamp,           -- UTC text, updated on every request of the client
	AESKey BLOB(32),              -- the AES key most recently issued to the client
	Fingerprint TEXT              -- version-4 certificate, SHA256:base64
);
CREATE UNIQUE INDEX IF NOT EXISTS clients_fingerprint ON clients (Fingerprint);

-- files: one row per (owner, file name). A pending registration that is replaced takes its
-- rows along. A row with Verified = 1 describes exactly the bytes at PathName. SHA256 is NULL
-- until known (a version-3 upload has none until it is first read).
CREATE TABLE IF NOT EXISTS files (
	ID BLOB(16) NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,
	FileName TEXT NOT NULL,       -- the name the client sent
	PathName TEXT NOT NULL,       -- the stored file, relative to the storage folder
	Verified BOOLEAN NOT NULL DEFAULT 0,
	Size INTEGER NOT NULL DEFAULT 0,      -- plaintext bytes
	CRC INTEGER NOT NULL DEFAULT 0,       -- cksum of the plaintext
	Uploaded timestamp,                   -- UTC text
	SHA256 BLOB(32) CHECK (SHA256 IS NULL OR length(SHA256) = 32),
	UNIQUE (ID, FileName)
);

-- commits: intents to publish a finished upload (issue 9 item 1). The server records the
-- intent, fsyncs TempPath and renames it to PathName, then in one transaction writes the files
-- row from the intent and deletes it; at start-up it rolls every intent forward (renames
-- TempPath if it still exists, then the same transaction). One intent per stored path at a
-- time (commits_path), so two renames onto one file never race. Created becomes Uploaded.
CREATE TABLE IF NOT EXISTS commits (
	ID BLOB(16) NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,
	FileName TEXT NOT NULL,
	TempPath TEXT NOT NULL,
	PathName TEXT NOT NULL,
	Size INTEGER NOT NULL CHECK (Size >= 0),
	CRC INTEGER NOT NULL,
	SHA256 BLOB(32) CHECK (SHA256 IS NULL OR length(SHA256) = 32),
	Verified BOOLEAN NOT NULL,
	Created timestamp NOT NULL,
	PRIMARY KEY (ID, FileName)
);
CREATE UNIQUE INDEX IF NOT EXISTS commits_path ON commits (PathName);

-- uploads: partial version-4 uploads, one per (owner, file name): the whole Size, the Offset
-- durably written (fsynced) to TempPath (relative to the storage folder), and when the
-- record and its temp file expire (Expires, UTC text like every time here).
CREATE TABLE IF NOT EXISTS uploads (
	ID BLOB(16) NOT NULL REFERENCES clients(ID) ON DELETE CASCADE,
	FileName TEXT NOT NULL,
	Size INTEGER NOT NULL CHECK (Size >= 0),
	"Offset" INTEGER NOT NULL CHECK ("Offset" >= 0 AND "Offset" <= Size),
	TempPath TEXT NOT NULL,
	Expires timestamp NOT NULL,
	Created timestamp NOT NULL,
	PRIMARY KEY (ID, FileName)
);

PRAGMA user_version = 2;
