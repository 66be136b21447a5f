/*
 * Children of the guard (ip, systemctl, wdctl, the daemon's stop command):
 * started with execvp on an argv array (never a shell), each in its own
 * process group, stdin and stdout on /dev/null, stderr captured for the log.
 * A child that outlives its timeout is killed with its whole group, so the
 * guard never waits past a bound on anything it started.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"

bool argv_from_json(struct argvbuf *a, const struct jval *arr, const char **why) {
  a->argc = 0;
  size_t used = 0;
  if (!arr || arr->type != J_ARR || !arr->child) {
    *why = "not a non-empty array of strings";
    return false;
  }
  for (const struct jval *v = arr->child; v; v = v->next) {
    if (v->type != J_STR || !v->str[0]) {
      *why = "not a non-empty array of strings";
      return false;
    }
    size_t n = strlen(v->str) + 1;
    if (a->argc >= GUARD_MAX_ARGV || used + n > sizeof a->store) {
      *why = "argv too long";
      return false;
    }
    memcpy(a->store + used, v->str, n);
    a->off[a->argc++] = used;
    used += n;
  }
  return true;
}

void argv_ptrs(const struct argvbuf *a, char **out) {
  for (int i = 0; i < a->argc; i++) out[i] = (char *)a->store + a->off[i];
  out[a->argc] = NULL;
}

int child_start(struct child *c, char *const argv[], double timeout_ms) {
  memset(c, 0, sizeof *c);
  c->pid = -1;
  c->pidfd = c->errfd = -1;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) return -errno;
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) {
    int e = errno;
    close(pipefd[0]);
    close(pipefd[1]);
    return -e;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(pipefd[0]);
    close(pipefd[1]);
    close(devnull);
    return -e;
  }
  if (pid == 0) {
    /* In the child: own group, default signals, nothing of the guard's but the three fds. */
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(pipefd[1], 2);
    int fl = fcntl(2, F_GETFL);
    if (fl >= 0) fcntl(2, F_SETFL, fl & ~O_NONBLOCK);
    execvp(argv[0], argv);
    dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid); /* also here: no window in which a kill of the group misses it */
  close(pipefd[1]);
  close(devnull);
  c->pid = pid;
  c->errfd = pipefd[0];
  /* Without a pidfd (kernel < 5.3, a seccomp filter) the exit is polled instead: see child_poll_ms. */
  c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  c->kill_at = now_ms() + timeout_ms;
  return 0;
}

void child_drain(struct child *c) {
  if (c->errfd < 0) return;
  char buf[1024];
  for (;;) {
    ssize_t n = read(c->errfd, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(c->errfd);
        c->errfd = -1;
      }
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    size_t room = sizeof c->err - 1 - c->errlen;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(c->err + c->errlen, buf, take);
    c->errlen += take;
    c->err[c->errlen] = '\0';
  }
}

static void finish(struct child *c) {
  child_drain(c);
  if (c->errfd >= 0) close(c->errfd);
  if (c->pidfd >= 0) close(c->pidfd);
  c->errfd = c->pidfd = -1;
  c->pid = -1;
}

void child_reap(struct child *c) {
  if (c->pid > 0 && waitpid(c->pid, &c->status, WNOHANG) == c->pid) finish(c);
}

/* Killed children not reaped yet (one stuck in the kernel dies late): looked at by child_reap_orphans. */
static pid_t orphans[16];

void child_reap_orphans(void) {
  for (size_t i = 0; i < sizeof orphans / sizeof orphans[0]; i++)
    if (orphans[i] > 0 && waitpid(orphans[i], NULL, WNOHANG) != 0) orphans[i] = 0;
}

void child_kill(struct child *c) {
  if (c->pid <= 0) return;
  c->timed_out = true;
  kill(-c->pid, SIGKILL);
  /* Never waited for: a child stuck in the kernel (D state) must not hold up the guard. */
  if (waitpid(c->pid, &c->status, WNOHANG) == 0) {
    for (size_t i = 0; i < sizeof orphans / sizeof orphans[0]; i++)
      if (orphans[i] <= 0) {
        orphans[i] = c->pid;
        break;
      }
  }
  finish(c);
}

int child_run(char *const argv[], double timeout_ms, struct child *c) {
  int r = child_start(c, argv, timeout_ms);
  if (r < 0) return r;
  while (c->pid > 0) {
    double left = c->kill_at - now_ms();
    if (left <= 0) {
      child_kill(c);
      break;
    }
    /* poll ignores a negative fd: without a pidfd, wake up every CHILD_POLL_MS to look. */
    struct pollfd pfd[2] = {{.fd = c->pidfd, .events = POLLIN}, {.fd = c->errfd, .events = POLLIN}};
    int wait = c->pidfd < 0 && left > CHILD_POLL_MS ? CHILD_POLL_MS : (int)left + 1;
    int n = poll(pfd, 2, wait);
    if (n < 0 && errno != EINTR) {
      child_kill(c);
      break;
    }
    if (pfd[1].revents) child_drain(c);
    if (pfd[0].revents || c->pidfd < 0) child_reap(c);
  }
  return 0;
}

bool child_ok(const struct child *c) {
  return !c->timed_out && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
}

void child_describe(const struct child *c, double timeout_ms, char *buf, size_t cap) {
  if (c->timed_out) snprintf(buf, cap, "timed out after %.0f ms (process group killed)", timeout_ms);
  else if (WIFEXITED(c->status)) snprintf(buf, cap, "exit %d", WEXITSTATUS(c->status));
  else if (WIFSIGNALED(c->status)) snprintf(buf, cap, "killed by signal %d", WTERMSIG(c->status));
  else snprintf(buf, cap, "status %d", c->status);
}
