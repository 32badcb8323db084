/* output.c: terminal-safe text, JSON strings and aligned tables for sealdrop-db. */
#include "output.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../protocol/text.h"

char *
out_clean(const char *s)
{
	size_t cap = TEXT_ESCAPE_SIZE(strlen(s));
	char *out;

	if ((out = malloc(cap)) == NULL)
		return NULL;
	text_escape(s, out, cap);
	return out;
}

/* Characters on screen of clean text (code points; wide characters count one). */
static size_t
cell_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

void
out_json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, i = 0, k;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	n = strlen(s);
	fputc('"', f);
	while (i < n) {
		k = text_utf8_len(p + i, n - i);
		if (p[i] == '"' || p[i] == '\\') {
			fputc('\\', f);
			fputc(p[i], f);
		} else if (p[i] == '\n') {
			fputs("\\n", f);
		} else if (p[i] == '\t') {
			fputs("\\t", f);
		} else if (p[i] == '\r') {
			fputs("\\r", f);
		} else if (k == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			fprintf(f, "\\u%04x", p[i]);
		} else {
			fwrite(p + i, 1, k, f);
			i += k;
			continue;
		}
		i++;
	}
	fputc('"', f);
}

void
out_table_init(struct out_table *t, size_t ncols, unsigned right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->right = right;
}

void
out_table_add(struct out_table *t, const char *const *row)
{
	char **grown;
	size_t i, base;

	if (t->failed)
		return;
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		if ((grown = realloc(t->cells, t->cap * t->ncols * sizeof(*grown))) == NULL) {
			t->failed = 1;
			return;
		}
		t->cells = grown;
	}
	base = t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++)
		t->cells[base + i] = out_clean(row[i]);
	t->nrows++;
	for (i = 0; i < t->ncols; i++)
		if (t->cells[base + i] == NULL)
			t->failed = 1;
}

void
out_table_print(const struct out_table *t, FILE *f)
{
	size_t width[OUT_TABLE_MAX_COLS] = { 0 };
	size_t r, c, w;
	const char *cell;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++)
			if ((w = cell_width(t->cells[r * t->ncols + c])) > width[c])
				width[c] = w;
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			cell = t->cells[r * t->ncols + c];
			w = cell_width(cell);
			if (c > 0)
				fputs("  ", f);
			if (t->right & (1u << c))
				fprintf(f, "%*s%s", (int)(width[c] - w), "", cell);
			else if (c + 1 < t->ncols)
				fprintf(f, "%s%*s", cell, (int)(width[c] - w), "");
			else
				fputs(cell, f);
		}
		fputc('\n', f);
	}
}

void
out_table_free(struct out_table *t)
{
	size_t i;

	for (i = 0; t->cells != NULL && i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}
