/*
 * bench/bench_proc.h — the programs a benchmark runs (citypass-admin, the server, the
 * controller, rm and cp), each with its output in a file, or nowhere.
 */
#ifndef CITYPASS_BENCH_PROC_H
#define CITYPASS_BENCH_PROC_H

#include <sys/types.h>

/* Starts argv[0] (a path, or a name looked up in PATH) with its stdout and stderr in
 * OUT_PATH (created or truncated; NULL: /dev/null). Its pid, or -1. */
pid_t bench_spawn(char *const argv[], const char *out_path);

/* bench_spawn, then its end: 0 when it exited with 0, -1 otherwise. */
int bench_run(char *const argv[], const char *out_path);

#endif
