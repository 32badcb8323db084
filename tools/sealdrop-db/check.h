/* check.h: sealdrop-db check: the database's integrity, every file row has its stored file
 * (same size, and for a verified row the same CRC) and every stored file its row; uploads in
 * progress and files being committed are listed, not counted. */
#ifndef SD_TOOL_CHECK_H
#define SD_TOOL_CHECK_H

struct db;

/* Checks db against the storage folder and prints the findings (JSON if json) to stdout;
 * crc = 1 also reads every verified file to compare its cksum with its row's CRC.
 * EXIT_OK if there is nothing wrong, EXIT_PROBLEMS otherwise (output.h). */
int check_storage(struct db *db, int json, int crc, const char *storage);

#endif
