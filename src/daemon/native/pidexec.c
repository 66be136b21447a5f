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
 * not started (exit 126); if PROGRAM cannot be run, exit 127. Messages go to
 * stderr, which the agent passes on to its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int start_time(char *out, size_t size) {
  char stat[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return -1;
  stat[n] = '\0';
  char *p = strrchr(stat, ')'); /* the command name may hold spaces and parentheses */
  if (!p) return -1;
  p += 2; /* field 3, the state */
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return -1;
    p++;
  }
  size_t len = strspn(p, "0123456789");
  if (len == 0 || len >= size) return -1;
  memcpy(out, p, len);
  out[len] = '\0';
  return 0;
}

int main(int argc, char **argv) {
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
  int len = start_time(start, sizeof start) == 0 ? snprintf(line, sizeof line, "%d %s\n", (int)getpid(), start) : snprintf(line, sizeof line, "%d\n", (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, line, (size_t)len) != len || close(fd) != 0 || rename(tmp, pidfile) != 0) {
    fprintf(stderr, "understudy-pidexec: cannot record the daemon's pid in %s: %s; not starting it\n", pidfile, strerror(errno));
    unlink(tmp);
    return 126;
  }
  execvp(argv[2], argv + 2);
  int err = errno;
  fprintf(stderr, "understudy-pidexec: cannot run %s: %s\n", argv[2], strerror(err));
  unlink(pidfile);
  return 127;
}
