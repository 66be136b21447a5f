/*
 * understudy-pidexec PIDFILE PROGRAM [ARG...]
 *
 * Records its own pid (and its start time, field 22 of /proc/self/stat) in
 * PIDFILE, then becomes PROGRAM with execvp: the daemon keeps that pid, so the
 * record exists before the daemon's first instruction. The agent used to spawn
 * the daemon and write daemon.pid afterwards: an agent killed in between (seen
 * under heavy load, a kill -9 during a takeover) left a cold daemon nobody
 * knew of, which the fence guard could not stop at the lease deadline.
 *
 * The record is written as the agent writes it ("PID START\n", 0644, a
 * temporary file renamed over PIDFILE). If it cannot be written the daemon is
 * not started (exit 126); if PROGRAM cannot be run, exit 127. Either way the
 * reason goes to stderr and, when the agent opened one, to fd 3: a pipe made
 * close-on-exec here, so the agent reads EOF once the daemon runs, or the
 * reason if it does not (its start() then fails as a failed spawn did).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../native-proc-start.h"

/* The reason (already formatted), on stderr and on the agent's status pipe (fd 3) when there is one. */
static void fail(const char *msg) {
  fprintf(stderr, "understudy-pidexec: %s\n", msg);
  if (fcntl(3, F_GETFD) != -1) {
    ssize_t unused = write(3, msg, strlen(msg));
    (void)unused;
  }
}

int main(int argc, char **argv) {
  /* The status pipe must not reach the daemon: exec closes it, which tells the agent it runs. */
  int flags = fcntl(3, F_GETFD);
  if (flags != -1) fcntl(3, F_SETFD, flags | FD_CLOEXEC);
  if (argc < 3 || argv[1][0] == '\0' || argv[2][0] == '\0') {
    fputs("usage: understudy-pidexec PIDFILE PROGRAM [ARG...]\n", stderr);
    return 126;
  }
  const char *pidfile = argv[1];
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-exec", pidfile) >= (int)sizeof tmp) {
    fputs("understudy-pidexec: pidfile path too long\n", stderr);
    return 126;
  }
  char start[32];
  char line[64];
  int len = proc_start_time("/proc/self/stat", start, sizeof start) == 1 ? snprintf(line, sizeof line, "%d %s\n", (int)getpid(), start) : snprintf(line, sizeof line, "%d\n", (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  errno = 0;
  if (fd < 0 || write(fd, line, (size_t)len) != len || close(fd) != 0 || rename(tmp, pidfile) != 0) {
    char msg[4600];
    snprintf(msg, sizeof msg, "cannot record the daemon's pid in %s (%s); not starting it", pidfile, errno ? strerror(errno) : "short write");
    fail(msg);
    unlink(tmp);
    return 126;
  }
  execvp(argv[2], argv + 2);
  int err = errno;
  unlink(pidfile);
  char msg[4200];
  snprintf(msg, sizeof msg, "spawn %.4000s %s", argv[2], err == ENOENT ? "ENOENT" : strerror(err));
  fail(msg);
  return 127;
}
