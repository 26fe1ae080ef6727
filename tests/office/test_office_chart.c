/*
 * test_office_chart.c — the back office's server-drawn SVG charts (office/chart.h), read
 * back by an independent XML parser: libxml2's xmllint (Debian's libxml2-utils), run as
 * a program on each chart written to a file. It checks that every chart is well-formed,
 * that a hostile label (markup, entities, CDATA ends, quotes, control characters, bytes
 * that are not UTF-8, a label cut in the middle of a character) comes back from the parser
 * as the same text — never as an element, an attribute or a script — and that the numbers
 * are there as text (accessibility), not only as bar lengths.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "office/chart.h"

#define NNBSP "\xe2\x80\xaf" /* U+202F, the French thousands separator */
#define FFFD  "\xef\xbf\xbd"

/* ---- xmllint ------------------------------------------------------------------------ */

/* The chart in a temporary file, for xmllint to read. */
static char *svg_file(const char *svg)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *path = malloc(strlen(tmp) + 32);
	assert_non_null(path);
	sprintf(path, "%s/chart-XXXXXX", tmp);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t n = strlen(svg);
	assert_int_equal(write(fd, svg, n), (ssize_t)n);
	close(fd);
	return path;
}

/* Runs xmllint with args on the chart; its standard output (the trailing line end taken
 * off) in a string the caller frees, or NULL when it exits with a failure. */
static char *xmllint(const char *svg, const char *const args[])
{
	char *path = svg_file(svg);
	const char *argv[8];
	size_t argc = 0;
	argv[argc++] = "xmllint";
	argv[argc++] = "--nonet";
	for (size_t i = 0; args[i]; i++)
		argv[argc++] = args[i];
	argv[argc++] = path;
	argv[argc] = NULL;

	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp("xmllint", (char *const *)argv);
		fprintf(stderr,
		        "cannot run xmllint (%s): scripts/install-deps.sh installs "
		        "libxml2-utils\n",
		        strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);
	assert_non_null(out);
	ssize_t r;
	while ((r = read(fds[0], out + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (cap - len < 2) {
			cap *= 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
	}
	close(fds[0]);
	out[len] = '\0';
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	free(path);
	assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 127);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(out);
		return NULL;
	}
	if (len > 0 && out[len - 1] == '\n')
		out[len - 1] = '\0';
	return out;
}

static int well_formed(const char *svg)
{
	const char *args[] = {"--noout", NULL};
	char *out = xmllint(svg, args);
	free(out);
	return out != NULL;
}

/* The value of an XPath expression (a string() or count()) over the chart. */
static char *xpath(const char *svg, const char *expr)
{
	const char *args[] = {"--xpath", expr, NULL};
	char *out = xmllint(svg, args);
	if (!out)
		fail_msg("xmllint could not read the chart or evaluate %s", expr);
	return out;
}

static void assert_xpath(const char *svg, const char *expr, const char *want)
{
	char *got = xpath(svg, expr);
	/* freed once on both paths: gcc -O2 cannot see that fail() does not return and
	 * took the old double free() for a use after free (-Werror=use-after-free) */
	const int differs = strcmp(got, want) != 0;
	if (differs)
		print_error("%s\n  got:  [%s]\n  want: [%s]\n", expr, got, want);
	free(got);
	if (differs)
		fail();
}

static char *draw(const struct office_chart *c)
{
	char *svg = NULL;
	size_t len = 0;
	int rc = office_chart_svg_string(c, &svg, &len);
	if (rc != OFFICE_CHART_OK)
		fail_msg("office_chart_svg_string: %s", office_chart_strerror(rc));
	assert_int_equal(strlen(svg), len);
	if (!well_formed(svg)) {
		print_error("%s", svg);
		fail_msg("the chart above is not well-formed XML (xmllint)");
	}
	return svg;
}

/* No way for anything in a chart to run: no script element, no event attribute, no
 * element able to carry HTML or load something (foreignObject, a link, an image). */
static void assert_inert(const char *svg)
{
	assert_xpath(svg,
	             "count(//*[local-name()='script' or local-name()='foreignObject' or "
	             "local-name()='a' or local-name()='image' or local-name()='use' or "
	             "local-name()='style' or local-name()='iframe'])",
	             "0");
	assert_xpath(svg, "count(//@*[starts-with(translate(local-name(), 'ON', 'on'), 'on')])",
	             "0");
	assert_xpath(svg, "count(//@*[local-name()='href'])", "0");
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_titles_in_french(void **state)
{
	(void)state;
	assert_string_equal(office_chart_title(OFFICE_CHART_BY_HOUR), "Passages par heure");
	assert_string_equal(office_chart_title(OFFICE_CHART_BY_SITE), "Passages par site");
	assert_string_equal(office_chart_title(OFFICE_CHART_BY_SERVICE), "Passages par service");
	assert_string_equal(office_chart_title(OFFICE_CHART_BY_OUTCOME), "Passages par résultat");
	assert_null(office_chart_title((enum office_chart_by)42));
	char buf[8];
	assert_string_equal(office_chart_hour_label(0, buf), "00 h");
	assert_string_equal(office_chart_hour_label(8, buf), "08 h");
	assert_string_equal(office_chart_hour_label(23, buf), "23 h");
	assert_string_equal(office_chart_hour_label(24, buf), "?");
	assert_string_equal(office_chart_hour_label(-1, buf), "?");
}

/* A day by hour: 24 bars, each value written as text in French, the axis round. */
static void test_hours_well_formed(void **state)
{
	(void)state;
	char labels[24][8];
	struct office_chart_row rows[24];
	for (int h = 0; h < 24; h++) {
		rows[h].label = office_chart_hour_label(h, labels[h]);
		rows[h].value = h >= 8 && h < 20 ? (uint64_t)(h * 100 + 34) : 0;
	}
	struct office_chart c = {office_chart_title(OFFICE_CHART_BY_HOUR), "passages", rows, 24};
	char *svg = draw(&c);
	assert_inert(svg);
	assert_xpath(svg, "namespace-uri(/*)", "http://www.w3.org/2000/svg");
	assert_xpath(svg, "local-name(/*)", "svg");
	assert_xpath(svg, "string(/*/@role)", "img");
	assert_xpath(svg, "string(/*/@aria-label)", "Passages par heure");
	assert_xpath(svg, "string(/*/*[local-name()='title'])", "Passages par heure");
	/* total 8..19: sum(h * 100 + 34) = 100 * 162 + 12 * 34 = 16 608 */
	assert_xpath(svg, "string(/*/*[local-name()='desc'])",
	             "24 barres, total 16" NNBSP "608 passages");
	assert_xpath(svg, "count(//*[@class='barre'])", "24");
	assert_xpath(svg, "string(//*[@class='barre'][9]/*[local-name()='title'])",
	             "08 h : 834 passages");
	assert_xpath(svg, "string(//*[@class='barre'][20]//*[@class='valeur'])", "1" NNBSP "934");
	assert_xpath(svg, "string(//*[@class='barre'][1]//*[@class='valeur'])", "0");
	/* largest 1 934 -> step 500, top 2 000: ticks 0, 500, 1 000, 1 500, 2 000 + the unit */
	assert_xpath(svg, "count(//*[@class='axe']/*[local-name()='text'])", "6");
	assert_xpath(svg, "string(//*[@class='axe']/*[local-name()='text'][5])", "2" NNBSP "000");
	assert_xpath(svg, "string(//*[@class='axe']/*[local-name()='text'][6])", "passages");
	/* the longest bar is as long as its value says: 1 934 / 2 000 of the 390 units */
	assert_xpath(svg, "string(//*[@class='barre'][20]/*[local-name()='rect']/@width)", "377");
	assert_xpath(svg, "string(//*[@class='barre'][1]/*[local-name()='rect']/@width)", "0");
	free(svg);
}

/* Labels an administrator could type, or an attacker could get into a site's name. Each
 * comes back from the parser as the same text. */
static const char *const hostile[] = {
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "' onload='alert(1)",
        "]]><script>alert(2)</script><![CDATA[",
        "&amp; &lt; &#x3c; &unknown; & <",
        "<!-- --><?xml-stylesheet href='x'?>",
        "</text></g></svg><svg onload=alert(3)>",
        "Piscine d'été « Les Flots » — bassin nordique",
        "'; DROP TABLE passes; --",
        "<foreignObject><body xmlns='http://www.w3.org/1999/xhtml'>",
        "x",
};

static void test_hostile_labels_are_text(void **state)
{
	(void)state;
	size_t n = sizeof hostile / sizeof hostile[0];
	struct office_chart_row rows[sizeof hostile / sizeof hostile[0]];
	for (size_t i = 0; i < n; i++)
		rows[i] = (struct office_chart_row){hostile[i], i * 7};
	struct office_chart c = {"<b>Titre</b> & \"guillemets\"", "<i>unités</i>", rows, n};
	char *svg = draw(&c);
	assert_inert(svg);
	assert_xpath(svg, "string(/*/@aria-label)", "<b>Titre</b> & \"guillemets\"");
	assert_xpath(svg, "string(/*/*[local-name()='title'])", "<b>Titre</b> & \"guillemets\"");
	assert_xpath(svg, "count(//*[@class='barre'])", "11");
	/* only the chart's own elements: svg title desc text g rect line */
	assert_xpath(svg,
	             "count(//*[not(local-name()='svg' or local-name()='title' or "
	             "local-name()='desc' or local-name()='text' or local-name()='g' or "
	             "local-name()='rect' or local-name()='line')])",
	             "0");
	for (size_t i = 0; i < n; i++) {
		char expr[128], want[256];
		snprintf(expr, sizeof expr,
		         "string(//*[@class='barre'][%zu]/*[local-name()='title'])", i + 1);
		snprintf(want, sizeof want, "%s : %zu <i>unités</i>", hostile[i], i * 7);
		assert_xpath(svg, expr, want);
	}
	free(svg);
}

/* What XML 1.0 cannot carry becomes U+FFFD: the chart stays well-formed (draw checks it). */
static void test_unrepresentable_bytes_replaced(void **state)
{
	(void)state;
	struct office_chart_row rows[] = {
	        {"a\x01z", 1},             /* a control character */
	        {"a\xff\xfez", 2},         /* bytes that start no UTF-8 character */
	        {"a\xc3z", 3},             /* a character cut short */
	        {"a\xc0\xafz", 4},         /* an overlong '/' */
	        {"a\xed\xa0\x80z", 5},     /* a UTF-16 surrogate */
	        {"a\xef\xbf\xbez", 6},     /* U+FFFE */
	        {"a\xf4\x90\x80\x80z", 7}, /* above U+10FFFF */
	        {"a\nb\rc\td", 8},         /* line ends: a label is one line; the tab stays */
	        {"a\x7fz", 9},
	        {"", 10}, /* empty is a label too */
	};
	struct office_chart c = {"Octets", "passages", rows, sizeof rows / sizeof rows[0]};
	char *svg = draw(&c);
	assert_inert(svg);
	assert_xpath(svg, "string(//*[@class='barre'][1]/*[local-name()='text'][1])", "a" FFFD "z");
	assert_xpath(svg, "string(//*[@class='barre'][2]/*[local-name()='text'][1])",
	             "a" FFFD FFFD "z");
	assert_xpath(svg, "string(//*[@class='barre'][3]/*[local-name()='text'][1])", "a" FFFD "z");
	assert_xpath(svg, "string(//*[@class='barre'][4]/*[local-name()='text'][1])",
	             "a" FFFD FFFD "z");
	assert_xpath(svg, "string(//*[@class='barre'][5]/*[local-name()='text'][1])",
	             "a" FFFD FFFD FFFD "z");
	assert_xpath(svg, "string(//*[@class='barre'][6]/*[local-name()='text'][1])", "a" FFFD "z");
	assert_xpath(svg, "string(//*[@class='barre'][8]/*[local-name()='text'][1])",
	             "a" FFFD "b" FFFD "c\td");
	assert_xpath(svg, "string(//*[@class='barre'][9]/*[local-name()='text'][1])", "a" FFFD "z");
	assert_xpath(svg, "string(//*[@class='barre'][10]/*[local-name()='title'])",
	             " : 10 passages");
	free(svg);
}

/* A long name is cut beside its bar on a character boundary (never inside "é"), whole in
 * the bar's title. */
static void test_long_label_cut_on_a_character(void **state)
{
	(void)state;
	char label[2 * 40 + 1] = "";
	for (int i = 0; i < 40; i++)
		strcat(label, "é");
	struct office_chart_row rows[] = {{label, 5}};
	struct office_chart c = {"Long", "passages", rows, 1};
	char *svg = draw(&c);
	char shown[2 * OFFICE_CHART_LABEL_SHOWN + 4] = "";
	for (int i = 0; i < OFFICE_CHART_LABEL_SHOWN; i++)
		strcat(shown, "é");
	strcat(shown, "\xe2\x80\xa6");
	assert_xpath(svg, "string(//*[@class='barre'][1]/*[local-name()='text'][1])", shown);
	char whole[sizeof label + 32];
	snprintf(whole, sizeof whole, "%s : 5 passages", label);
	assert_xpath(svg, "string(//*[@class='barre'][1]/*[local-name()='title'])", whole);
	free(svg);
}

static void test_empty_and_extreme_values(void **state)
{
	(void)state;
	struct office_chart c = {"Vide", "passages", NULL, 0};
	char *svg = draw(&c);
	assert_xpath(svg, "string(/*/*[local-name()='desc'])", "Aucune donnée");
	assert_xpath(svg, "count(//*[@class='barre'])", "0");
	free(svg);

	struct office_chart_row rows[] = {{"max", UINT64_MAX}, {"max bis", UINT64_MAX}, {"2", 2}};
	c = (struct office_chart){"Extrême", "passages", rows, 3};
	svg = draw(&c);
	assert_xpath(svg, "string(//*[@class='barre'][1]//*[@class='valeur'])",
	             "18" NNBSP "446" NNBSP "744" NNBSP "073" NNBSP "709" NNBSP "551" NNBSP "615");
	/* the total saturates rather than wrapping to a small number */
	assert_xpath(svg, "string(/*/*[local-name()='desc'])",
	             "3 barres, total 18" NNBSP "446" NNBSP "744" NNBSP "073" NNBSP "709" NNBSP
	             "551" NNBSP "615 passages");
	assert_xpath(svg, "string(//*[@class='barre'][1]/*[local-name()='rect']/@width)", "390");
	assert_xpath(svg, "string(//*[@class='barre'][3]/*[local-name()='rect']/@width)", "0");
	free(svg);
}

static void test_refusals(void **state)
{
	(void)state;
	struct office_chart_row ok_rows[] = {{"a", 1}};
	struct office_chart_row null_label[] = {{NULL, 1}};
	struct office_chart c = {"T", "u", ok_rows, 1};
	char *svg = (char *)1;
	assert_int_equal(office_chart_svg_string(NULL, &svg, NULL), OFFICE_CHART_EINVAL);
	assert_null(svg);
	c.title = NULL;
	assert_int_equal(office_chart_svg_string(&c, &svg, NULL), OFFICE_CHART_EINVAL);
	c.title = "T", c.unit = NULL;
	assert_int_equal(office_chart_svg_string(&c, &svg, NULL), OFFICE_CHART_EINVAL);
	c.unit = "u", c.rows = null_label;
	assert_int_equal(office_chart_svg_string(&c, &svg, NULL), OFFICE_CHART_EINVAL);
	c.rows = NULL;
	assert_int_equal(office_chart_svg_string(&c, &svg, NULL), OFFICE_CHART_EINVAL);
	c.rows = ok_rows, c.n_rows = OFFICE_CHART_ROWS_MAX + 1;
	assert_int_equal(office_chart_svg_string(&c, &svg, NULL), OFFICE_CHART_EINVAL);
	c.n_rows = 1;
	assert_int_equal(office_chart_svg(NULL, &c), OFFICE_CHART_EINVAL);
	assert_string_equal(office_chart_strerror(OFFICE_CHART_EINVAL),
	                    "graphique invalide : un titre ou une étiquette manque, ou il a trop "
	                    "de lignes");

	/* a stream that refuses every write (unbuffered, so the first write fails) */
	FILE *full = fopen("/dev/full", "w");
	if (full) {
		setvbuf(full, NULL, _IONBF, 0);
		assert_int_equal(office_chart_svg(full, &c), OFFICE_CHART_EIO);
		fclose(full);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_titles_in_french),
	        cmocka_unit_test(test_hours_well_formed),
	        cmocka_unit_test(test_hostile_labels_are_text),
	        cmocka_unit_test(test_unrepresentable_bytes_replaced),
	        cmocka_unit_test(test_long_label_cut_on_a_character),
	        cmocka_unit_test(test_empty_and_extreme_values),
	        cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
