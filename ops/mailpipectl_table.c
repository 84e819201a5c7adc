/*
 * mailpipectl_table.c: the listings of the mailpipectl subcommands (`dlq list`,
 * `apikey list`, `suppression list`): rows of a query result printed as aligned
 * columns under their headings.
 */
#include <stdio.h>
#include <string.h>

#include "mailpipectl.h"

/* Prints s in a field of width (left-aligned unless right), control characters as '?'. */
static void
print_cell(const char *s, int width, int flags)
{
	int n = (int)strlen(s);

	if (flags & MAILPIPECTL_COL_RIGHT)
		for (; n < width; n++)
			putchar(' ');
	for (; *s != '\0'; s++)
		putchar((flags & MAILPIPECTL_COL_CLEAN) && ((unsigned char)*s < 0x20 || *s == 0x7f)
			    ? '?'
			    : *s);
	if (!(flags & MAILPIPECTL_COL_RIGHT))
		for (; n < width; n++)
			putchar(' ');
}

static void
print_line(const char *const *cells, const int *width, const struct mailpipectl_col *cols,
	   int ncols)
{
	for (int c = 0; c < ncols; c++) {
		/* the last column is not padded: no trailing blanks */
		print_cell(cells[c], c + 1 < ncols ? width[c] : 0, cols[c].flags);
		fputs(c + 1 < ncols ? "  " : "\n", stdout);
	}
}

void
mailpipectl_print_table(const PGresult *res, int nrows, const struct mailpipectl_col *cols,
			int ncols)
{
	int width[MAILPIPECTL_TABLE_MAX_COLS], len;
	const char *cells[MAILPIPECTL_TABLE_MAX_COLS];

	if (ncols > MAILPIPECTL_TABLE_MAX_COLS)
		ncols = MAILPIPECTL_TABLE_MAX_COLS;
	if (nrows > PQntuples(res))
		nrows = PQntuples(res);
	for (int c = 0; c < ncols; c++) {
		width[c] = (int)strlen(cols[c].head);
		for (int i = 0; i < nrows; i++)
			if ((len = PQgetlength(res, i, c)) > width[c])
				width[c] = len;
		cells[c] = cols[c].head;
	}
	print_line(cells, width, cols, ncols);
	for (int i = 0; i < nrows; i++) {
		for (int c = 0; c < ncols; c++)
			cells[c] = PQgetvalue(res, i, c);
		print_line(cells, width, cols, ncols);
	}
}
