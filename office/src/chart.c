/*
 * Server-drawn SVG bar charts (office/chart.h). One layout: horizontal bars, because the
 * labels are names (sites, services) of any length and 24 hours read down a column as well
 * as across; the label column on the left, the bars and their values to its right, an
 * axis with round ticks below.
 */
#include "office/chart.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Geometry, in SVG user units (pixels at 100 %). */
#define CHART_WIDTH  720
#define TITLE_X      10
#define LABEL_COLUMN 220 /* labels end here, right-aligned */
#define PLOT_LEFT    230
#define PLOT_RIGHT   620 /* room for the value written after the longest bar */
#define TITLE_HEIGHT 40
#define ROW_HEIGHT   24
#define BAR_HEIGHT   16
#define AXIS_HEIGHT  40
#define TICKS_WANTED 5
#define FONT         "font-family=\"sans-serif\" font-size=\"13\""
/* Colours chosen for contrast on white (WCAG AA for the text, 3:1 for the bars). */
#define COLOUR_TEXT "#1a1a1a"
#define COLOUR_BAR  "#1f5f99"
#define COLOUR_AXIS "#555555"
#define COLOUR_GRID "#d9d9d9"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

const char *office_chart_strerror(int err)
{
	switch (err) {
	case OFFICE_CHART_OK:
		return "aucune erreur";
	case OFFICE_CHART_EINVAL:
		return "graphique invalide : un titre ou une étiquette manque, ou il a trop de "
		       "lignes";
	case OFFICE_CHART_EIO:
		return "le graphique n'a pas pu être écrit";
	case OFFICE_CHART_ENOMEM:
		return "mémoire insuffisante pour dessiner le graphique";
	default:
		return "erreur inconnue du graphique";
	}
}

const char *office_chart_title(enum office_chart_by by)
{
	switch (by) {
	case OFFICE_CHART_BY_HOUR:
		return "Passages par heure";
	case OFFICE_CHART_BY_SITE:
		return "Passages par site";
	case OFFICE_CHART_BY_SERVICE:
		return "Passages par service";
	case OFFICE_CHART_BY_OUTCOME:
		return "Passages par résultat";
	}
	return NULL;
}

const char *office_chart_hour_label(int hour, char buf[8])
{
	if (hour < 0 || hour > 23)
		snprintf(buf, 8, "?");
	else
		snprintf(buf, 8, "%02d h", hour);
	return buf;
}

/* --- text ------------------------------------------------------------------------------ */

/* One UTF-8 character at s (n bytes left): its length, and *cp its code point; 0 when the
 * bytes are not a well-formed character (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t len;
	uint32_t c, min;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* What XML 1.0 allows in a document (§2.2 Char), less the line ends: a label is one line. */
static bool xml_char(uint32_t c)
{
	if (c < 0x20)
		return c == '\t';
	if (c == 0x7f)
		return false; /* allowed by XML, but a control character nobody means in a label */
	return c != 0xfffe && c != 0xffff;
}

/* Writes text escaped for XML content and attribute values alike, at most max_chars
 * characters (0: no limit) followed by "…" when cut. */
static void put_text(FILE *out, const char *text, size_t max_chars)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), chars = 0;
	while (n > 0) {
		if (max_chars && chars == max_chars) {
			fputs("\xe2\x80\xa6", out); /* … */
			return;
		}
		uint32_t c;
		size_t len = utf8_next(s, n, &c);
		if (len == 0) {
			fputs(REPLACEMENT, out); /* one byte that starts no character */
			s++, n--;
		} else {
			if (!xml_char(c))
				fputs(REPLACEMENT, out);
			else if (c == '&')
				fputs("&amp;", out);
			else if (c == '<')
				fputs("&lt;", out);
			else if (c == '>')
				fputs("&gt;", out);
			else if (c == '"')
				fputs("&quot;", out);
			else if (c == '\'')
				fputs("&#39;", out);
			else
				fwrite(s, 1, len, out);
			s += len, n -= len;
		}
		chars++;
	}
}

/* A count the French way: groups of three digits separated by a narrow no-break space
 * (U+202F), "12 345". */
static void put_count(FILE *out, uint64_t v)
{
	char digits[24];
	int n = snprintf(digits, sizeof digits, "%" PRIu64, v);
	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			fputs("\xe2\x80\xaf", out);
		fputc(digits[i], out);
	}
}

/* --- scale ----------------------------------------------------------------------------- */

/* The axis: a round step (1, 2 or 5 times a power of ten) giving at most TICKS_WANTED
 * intervals up to a round maximum at or above the largest value. */
static void axis_scale(uint64_t max, uint64_t *step, uint64_t *top)
{
	if (max == 0) {
		*step = 1, *top = 1;
		return;
	}
	uint64_t raw = max / TICKS_WANTED + (max % TICKS_WANTED != 0), p = 1;
	while (p <= raw / 10)
		p *= 10;
	uint64_t s;
	if (raw <= p)
		s = p;
	else if (raw <= 2 * p)
		s = 2 * p;
	else if (raw <= 5 * p)
		s = 5 * p;
	else
		s = 10 * p;
	*step = s;
	uint64_t steps = max / s + (max % s != 0);
	/* near 2^64 the round maximum does not exist: the axis ends at the value itself */
	*top = steps > UINT64_MAX / s ? max : steps * s;
}

/* x of a value, a whole number: coordinates are written as integers, so no locale's
 * decimal comma (a daemon that called setlocale) can ever reach the SVG. long double
 * because v * width overflows 64 bits near 2^64. */
static int x_of(uint64_t v, uint64_t top)
{
	long double w = (long double)v * (PLOT_RIGHT - PLOT_LEFT) / (long double)top;
	return PLOT_LEFT + (int)(w + 0.5L);
}

/* --- drawing --------------------------------------------------------------------------- */

static int check(const struct office_chart *c)
{
	if (!c || !c->title || !c->unit || (c->n_rows > 0 && !c->rows) ||
	    c->n_rows > OFFICE_CHART_ROWS_MAX)
		return OFFICE_CHART_EINVAL;
	for (size_t i = 0; i < c->n_rows; i++)
		if (!c->rows[i].label)
			return OFFICE_CHART_EINVAL;
	return OFFICE_CHART_OK;
}

static void draw_head(FILE *out, const struct office_chart *c, int height, uint64_t total)
{
	fprintf(out,
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graphique\" role=\"img\" "
	        "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" aria-label=\"",
	        CHART_WIDTH, height, CHART_WIDTH, height);
	put_text(out, c->title, 0);
	fputs("\">\n<title>", out);
	put_text(out, c->title, 0);
	fputs("</title>\n<desc>", out);
	if (c->n_rows == 0) {
		fputs("Aucune donnée", out);
	} else {
		fprintf(out, "%zu barre%s, total ", c->n_rows, c->n_rows > 1 ? "s" : "");
		put_count(out, total);
		fputc(' ', out);
		put_text(out, c->unit, 0);
	}
	fputs("</desc>\n", out);
	fprintf(out,
	        "<text x=\"%d\" y=\"24\" " FONT " font-weight=\"bold\" fill=\"" COLOUR_TEXT "\">",
	        TITLE_X);
	put_text(out, c->title, 0);
	fputs("</text>\n", out);
}

static void draw_axis(FILE *out, const struct office_chart *c, int plot_bottom, uint64_t step,
                      uint64_t top)
{
	fprintf(out,
	        "<g class=\"axe\" " FONT " fill=\"" COLOUR_AXIS "\" text-anchor=\"middle\">\n");
	for (uint64_t t = 0;; t += step) {
		int x = x_of(t, top);
		fprintf(out,
		        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\"/>"
		        "<text x=\"%d\" y=\"%d\">",
		        x, TITLE_HEIGHT, x, plot_bottom + 4, t == 0 ? COLOUR_AXIS : COLOUR_GRID, x,
		        plot_bottom + 18);
		put_count(out, t);
		fputs("</text>\n", out);
		if (t >= top || top - t < step)
			break;
	}
	fprintf(out, "<text x=\"%d\" y=\"%d\">", (PLOT_LEFT + PLOT_RIGHT) / 2, plot_bottom + 34);
	put_text(out, c->unit, 0);
	fputs("</text>\n</g>\n", out);
}

static void draw_bar(FILE *out, const struct office_chart *c, size_t i, uint64_t top)
{
	const struct office_chart_row *r = &c->rows[i];
	int y = TITLE_HEIGHT + (int)i * ROW_HEIGHT;
	int bar_y = y + (ROW_HEIGHT - BAR_HEIGHT) / 2, text_y = y + ROW_HEIGHT / 2 + 5;
	int end = x_of(r->value, top);

	fputs("<g class=\"barre\"><title>", out);
	put_text(out, r->label, 0);
	fputs(" : ", out);
	put_count(out, r->value);
	fputc(' ', out);
	put_text(out, c->unit, 0);
	fputs("</title>\n", out);
	fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LABEL_COLUMN, text_y);
	put_text(out, r->label, OFFICE_CHART_LABEL_SHOWN);
	fputs("</text>", out);
	fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"" COLOUR_BAR "\"/>",
	        PLOT_LEFT, bar_y, end - PLOT_LEFT, BAR_HEIGHT);
	fprintf(out, "<text x=\"%d\" y=\"%d\" class=\"valeur\">", end + 6, text_y);
	put_count(out, r->value);
	fputs("</text></g>\n", out);
}

int office_chart_svg(FILE *out, const struct office_chart *chart)
{
	int rc = check(chart);
	if (rc != OFFICE_CHART_OK)
		return rc;
	if (!out)
		return OFFICE_CHART_EINVAL;

	uint64_t max = 0, total = 0, step, top;
	for (size_t i = 0; i < chart->n_rows; i++) {
		uint64_t v = chart->rows[i].value;
		if (v > max)
			max = v;
		total = v > UINT64_MAX - total ? UINT64_MAX : total + v; /* saturates */
	}
	axis_scale(max, &step, &top);
	size_t shown_rows = chart->n_rows ? chart->n_rows : 1; /* the "Aucune donnée" line */
	int plot_bottom = TITLE_HEIGHT + (int)shown_rows * ROW_HEIGHT;
	int height = plot_bottom + AXIS_HEIGHT;

	draw_head(out, chart, height, total);
	/* the axis and its grid first: the bars are drawn over them */
	draw_axis(out, chart, plot_bottom, step, top);
	fprintf(out, "<g " FONT " fill=\"" COLOUR_TEXT "\">\n");
	if (chart->n_rows == 0)
		fprintf(out, "<text x=\"%d\" y=\"%d\">Aucune donnée</text>\n", PLOT_LEFT,
		        TITLE_HEIGHT + ROW_HEIGHT / 2 + 5);
	for (size_t i = 0; i < chart->n_rows; i++)
		draw_bar(out, chart, i, top);
	fputs("</g>\n</svg>\n", out);
	return ferror(out) ? OFFICE_CHART_EIO : OFFICE_CHART_OK;
}

int office_chart_svg_string(const struct office_chart *chart, char **svg, size_t *len)
{
	if (!svg)
		return OFFICE_CHART_EINVAL;
	*svg = NULL;
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);
	if (!out)
		return OFFICE_CHART_ENOMEM;
	int rc = office_chart_svg(out, chart);
	/* open_memstream's buffer is complete only after fclose; a failed flush is memory */
	if (fclose(out) != 0 && rc == OFFICE_CHART_OK)
		rc = OFFICE_CHART_ENOMEM;
	if (rc != OFFICE_CHART_OK) {
		free(buf);
		return rc == OFFICE_CHART_EIO ? OFFICE_CHART_ENOMEM : rc;
	}
	*svg = buf;
	if (len)
		*len = size;
	return OFFICE_CHART_OK;
}
