/* check.h: sealdrop-db check: the database's integrity, every file row has its stored file
 * (same size) and every stored file its row; uploads in progress are listed, not counted. */
#ifndef SD_TOOL_CHECK_H
#define SD_TOOL_CHECK_H

struct db;

/* Checks db against the storage folder and prints the findings (JSON if json) to stdout.
 * EXIT_OK if there is nothing wrong, EXIT_PROBLEMS otherwise (output.h). */
int check_storage(struct db *db, int json, const char *storage);

#endif
