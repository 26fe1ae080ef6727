/*
 * office/chart.h — the back office's statistics drawn by the server as SVG (issue 18,
 * item 3): a horizontal bar chart, one bar per row (an hour, a site, a service, an
 * outcome), in French, with no JavaScript and no stylesheet (presentation attributes
 * only, so a page's Content-Security-Policy can forbid both).
 *
 * Pure functions: rows in, SVG text out; nothing is read from a database here (the
 * caller groups the statistics and names the rows).
 *
 * Accessible without the picture: the <svg> is role="img" with the title as its
 * aria-label and a <title> and <desc> (what it counts, how many bars, the total); every
 * bar carries its own <title> ("Piscine : 1 234 passages") and its value is written
 * beside it as text, so a screen reader, a text browser or a printout reads the numbers,
 * not only the lengths.
 *
 * Every label and title is text from outside (a site name an administrator typed): it is
 * escaped for XML, and what XML 1.0 cannot carry at all (bytes that are not UTF-8, control
 * characters, U+FFFE/U+FFFF) becomes U+FFFD, so the output is always well-formed and a
 * label can never become markup. A label longer than OFFICE_CHART_LABEL_SHOWN characters
 * is cut on a character boundary with "…" beside its bar; its <title> keeps it whole.
 */
#ifndef OFFICE_CHART_H
#define OFFICE_CHART_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Errors: negative, with a French sentence from office_chart_strerror. */
enum office_chart_err {
	OFFICE_CHART_OK = 0,
	OFFICE_CHART_EINVAL = -1, /* a NULL where text is required, or too many rows */
	OFFICE_CHART_EIO = -2,    /* the output stream refused a write */
	OFFICE_CHART_ENOMEM = -3,
};

/* More rows than any of the back office's charts needs (24 hours, a town's sites): a
 * caller passing more has a bug, and the picture would be unreadable anyway. */
#define OFFICE_CHART_ROWS_MAX 200
/* Characters of a label shown beside its bar (the rest is in the bar's <title>). */
#define OFFICE_CHART_LABEL_SHOWN 28

struct office_chart_row {
	const char *label; /* UTF-8, any content: escaped */
	uint64_t value;
};

struct office_chart {
	const char *title; /* "Passages par heure" */
	const char *unit;  /* the values' noun, plural: "passages" */
	const struct office_chart_row *rows;
	size_t n_rows; /* 0 draws an empty chart saying "Aucune donnée" */
};

/* The dimensions the back office draws, with their French titles. */
enum office_chart_by {
	OFFICE_CHART_BY_HOUR,
	OFFICE_CHART_BY_SITE,
	OFFICE_CHART_BY_SERVICE,
	OFFICE_CHART_BY_OUTCOME,
};

/* "Passages par heure", "par site", "par service", "par résultat"; NULL for an unknown
 * value. */
const char *office_chart_title(enum office_chart_by by);

/* The French label of an hour of the day, "08 h" (hour 0..23; "?" otherwise), in buf. */
const char *office_chart_hour_label(int hour, char buf[8]);

/* Writes the chart's SVG (an <svg> element with its namespace, no XML declaration, so it
 * can be put inline in an HTML page or served alone) to out. */
int office_chart_svg(FILE *out, const struct office_chart *chart);

/* The same in a string the caller frees; *len (if not NULL) gets its length. */
int office_chart_svg_string(const struct office_chart *chart, char **svg, size_t *len);

/* A French sentence for an error of this header. */
const char *office_chart_strerror(int err);

#endif
