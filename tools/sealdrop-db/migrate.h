/* migrate.h: `sealdrop-db migrate --from SRC --to DST`: copies a sealdrop database (clients,
 * files, commit intents, partial uploads) into another, typically SQLite into PostgreSQL,
 * through db.h only. Running it again changes nothing (every row is written whole, keyed as
 * in the source). Prints what it did and a check (row counts, every row compared) on stdout,
 * failures on stderr; returns an exit status of output.h. */
#ifndef SD_TOOL_MIGRATE_H
#define SD_TOOL_MIGRATE_H

int migrate(const char *from, const char *to);

#endif
