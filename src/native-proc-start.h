/*
 * Shared by the native helpers that read a process's start time: field 22
 * of /proc/PID/stat (clock ticks since boot), which understudy-pidexec
 * records beside the daemon's pid and the fence guard checks before it
 * signals that pid (a pid the kernel reused belongs to another process).
 */
#ifndef UNDERSTUDY_NATIVE_PROC_START_H
#define UNDERSTUDY_NATIVE_PROC_START_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Field 22 of the stat file at `path` (/proc/PID/stat, /proc/self/stat) into out.
   1: read; 0: no such process; -1: cannot tell (EACCES under hidepid, EMFILE, ...). */
static inline int proc_start_time(const char *path, char *out, size_t size) {
  char stat[1024];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH ? 0 : -1;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  int e = errno;
  close(fd);
  if (n < 0 && e == ESRCH) return 0;
  if (n <= 0) return -1;
  stat[n] = '\0';
  char *p = strrchr(stat, ')'); /* the command name may hold spaces and parentheses */
  if (!p || p[1] != ' ') return -1;
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
  return 1;
}

#endif
