/* output.h: what every command of sealdrop-db prints through: exit statuses, text made safe
 * for a terminal, JSON strings, and aligned text tables. Text from the database is escaped
 * (protocol/text.h) so a hostile name cannot move the cursor or fake other lines. */
#ifndef SD_TOOL_OUTPUT_H
#define SD_TOOL_OUTPUT_H

#include <stddef.h>
#include <stdio.h>

#define PROG "sealdrop-db"

/* Exit statuses (documented in --help and sealdrop-db(1)). */
#define EXIT_OK 0
#define EXIT_PROBLEMS 1
#define EXIT_USAGE 2
#define EXIT_NO_DB 3

/* A copy of s safe for a terminal: control characters and bytes that are not UTF-8 become
 * \xNN (text_escape()). The caller frees it; NULL if out of memory. */
char *out_clean(const char *s);

/* Writes s as a JSON string (NULL as null): valid UTF-8 as is, the rest escaped (bytes that
 * are not UTF-8 as \u00XX, which names the byte, since JSON text itself must be valid UTF-8). */
void out_json_str(FILE *f, const char *s);

/* An aligned text table, filled row by row and printed once. Cells are cleaned copies, owned
 * by the table; out_table_free() releases them (and accepts a table that failed). */
#define OUT_TABLE_MAX_COLS 8

struct out_table {
	size_t ncols;
	unsigned right;    /* bit i: column i is right-aligned (numbers) */
	size_t nrows, cap;
	char **cells;      /* nrows * ncols, cleaned text */
	int failed;        /* out of memory on some row: nothing is printed */
};

void out_table_init(struct out_table *t, size_t ncols, unsigned right);
/* Adds a row of t->ncols strings (copied and cleaned). */
void out_table_add(struct out_table *t, const char *const *row);
void out_table_print(const struct out_table *t, FILE *f);
void out_table_free(struct out_table *t);

#endif
