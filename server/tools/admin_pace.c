/* admin_pace.c — see admin_pace.h */
#include "admin_pace.h"

void admin_pace_init(struct admin_pace *p, double budget)
{
	p->budget = budget;
	p->commit_per_line = -1;
}

int admin_pace_full(const struct admin_pace *p, unsigned lines, double elapsed)
{
	double commit = p->commit_per_line < 0 ? elapsed : p->commit_per_line * lines;
	return elapsed + commit >= p->budget;
}

void admin_pace_committed(struct admin_pace *p, unsigned lines, double seconds)
{
	if (lines > 0 && seconds >= 0) /* an empty commit (the file's end) tells nothing */
		p->commit_per_line = seconds / lines;
}
