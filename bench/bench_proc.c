/* bench/bench_proc.c — the programs a benchmark runs (bench_proc.h). */
#include "bench_proc.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t bench_spawn(char *const argv[], const char *out_path)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd =
		        open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int bench_run(char *const argv[], const char *out_path)
{
	pid_t pid = bench_spawn(argv, out_path);
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
