/*
 * admin_pace.h — how many lines a bulk import's transaction takes (admin_import.c).
 *
 * A transaction holds the database's write lock from its first insert to the end of its
 * commit, and the sync server's ingestion waits for it meanwhile. The commit is no small
 * part: at 5 M passes it writes out every index page the lines touched at random (about
 * two pages a line) and syncs them, as long as the inserting itself. So a transaction ends
 * when what it took so far plus what its commit will take, at the last commit's cost per
 * line, reaches the budget.
 */
#ifndef CITYPASS_ADMIN_PACE_H
#define CITYPASS_ADMIN_PACE_H

struct admin_pace {
	double budget;          /* seconds a transaction holds the write lock, commit included */
	double commit_per_line; /* seconds, measured at the last commit; < 0: none yet */
};

void admin_pace_init(struct admin_pace *p, double budget);
/* 1 when a transaction that has taken `elapsed` seconds over `lines` lines is to commit
 * now. Before any commit was measured, its commit is taken to cost as much again. */
int admin_pace_full(const struct admin_pace *p, unsigned lines, double elapsed);
/* A commit of `lines` lines took `seconds`. */
void admin_pace_committed(struct admin_pace *p, unsigned lines, double seconds);

#endif
