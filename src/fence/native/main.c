/*
 * understudy-fence-guard: started (detached) by the agent, it survives the
 * agent's death. It listens on a unix socket in the state directory for
 * heartbeats carrying the lease deadline (see core.c for what it does) and
 * replies with the watchdog's state (watchdog.c). One thread, one poll loop;
 * timers are absolute CLOCK_MONOTONIC times, waited for with ppoll.
 *
 *   understudy-fence-guard --socket PATH --pidfile PATH [--sysfs-watchdog DIR]
 *
 * --sysfs-watchdog (default /sys/class/watchdog) is where the watchdog's
 * sysfs attributes are read; children are found on PATH (execvp).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"

#define MAX_CLIENTS 16

/* Replies are snapshots of the watchdog's state: an agent slow to read gets the latest, not a backlog. */
#define REPLY_MAX (8 * PATH_MAX)

struct client {
  int fd;
  bool dead; /* the connection failed: dropped by the loop, never while its input is being read */
  size_t out_len, out_off; /* the reply being sent (a line is never cut by a newer one) */
  size_t next_len;         /* the newest reply, sent after it */
  char out[REPLY_MAX];
  char next[REPLY_MAX];
  size_t len;
  char buf[GUARD_MAX_LINE + 1];
};

static const char *socket_path;
static const char *pidfile_path;
static struct client *clients[MAX_CLIENTS];
static struct jdoc doc;

double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void glog(const char *fmt, ...) {
  char line[4096];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ understudy fence guard %d: ", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
  line[len++] = '\n';
  /* One write per line: the log is shared with nothing, but a line must not be torn. */
  ssize_t w = write(2, line, len);
  (void)w;
}

static void drop_client(int i) {
  close(clients[i]->fd);
  free(clients[i]);
  clients[i] = NULL;
  core_disconnected();
}

/* Send what is pending without blocking; false if the connection failed. */
static bool flush(struct client *c) {
  for (;;) {
    if (c->out_off == c->out_len) {
      if (!c->next_len) return true;
      memcpy(c->out, c->next, c->next_len);
      c->out_len = c->next_len;
      c->out_off = c->next_len = 0;
    }
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c->out_off += (size_t)w;
  }
}

void broadcast(const char *line) {
  size_t len = strlen(line);
  if (len + 1 > REPLY_MAX) {
    glog("a reply of %zu bytes is too long: not sent", len);
    return;
  }
  for (int i = 0; i < MAX_CLIENTS; i++) {
    struct client *c = clients[i];
    if (!c || c->dead) continue;
    /* Never block on an agent that does not read (a frozen one): keep only the newest reply for it. */
    memcpy(c->next, line, len);
    c->next[len] = '\n';
    c->next_len = len + 1;
    if (!flush(c)) c->dead = true;
  }
}

void guard_exit(int code) {
  if (socket_path) unlink(socket_path);
  if (pidfile_path) unlink(pidfile_path);
  glog("exiting");
  exit(code);
}

static void usage(void) {
  static const char msg[] = "usage: understudy-fence-guard --socket PATH --pidfile PATH [--sysfs-watchdog DIR]\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  exit(2);
}

static void on_line(char *line, size_t len) {
  const char *err = NULL;
  struct jval *msg = json_parse(&doc, line, len, &err);
  if (!msg) glog("ignoring a malformed message: %s", err);
  else if (msg->type != J_OBJ) glog("ignoring a malformed message: not an object");
  else core_handle(msg);
}

/* Read what an agent sent; false when the connection is to be dropped. */
static bool on_readable(struct client *c) {
  for (;;) {
    ssize_t n = read(c->fd, c->buf + c->len, GUARD_MAX_LINE + 1 - c->len);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? true : false;
    c->len += (size_t)n;
    char *start = c->buf, *nl;
    while (!c->dead && (nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
      *nl = '\0';
      on_line(start, (size_t)(nl - start));
      start = nl + 1;
    }
    if (c->dead) return false;
    c->len -= (size_t)(start - c->buf);
    memmove(c->buf, start, c->len);
    if (c->len > GUARD_MAX_LINE) {
      glog("a message longer than %d bytes: closing the connection", GUARD_MAX_LINE);
      return false;
    }
  }
}

static int listen_on(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) {
    glog("socket path too long (at most %zu bytes): %s", sizeof a.sun_path - 1, path);
    exit(2);
  }
  memcpy(a.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  unlink(path);
  mode_t old = umask(0177); /* the socket is created 0600 */
  int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&a, sizeof a);
  umask(old);
  if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
    glog("cannot listen on %s: %s", path, strerror(errno));
    exit(1);
  }
  return fd;
}

static void write_pidfile(const char *path) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, buf, (size_t)n) != n || close(fd) != 0) {
    glog("cannot write the pidfile %s: %s", path, strerror(errno));
    unlink(socket_path);
    exit(1);
  }
}

static double min_timer(double a, double b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (strcmp(argv[i], "--socket") == 0) socket_path = v;
    else if (strcmp(argv[i], "--pidfile") == 0) pidfile_path = v;
    else if (strcmp(argv[i], "--sysfs-watchdog") == 0) wd_sysfs_root = v;
    else usage();
    i++;
  }
  if (!socket_path || !pidfile_path || !*socket_path || !*pidfile_path) usage();

  /* Signals arrive through a signalfd, in the loop; children get them unblocked again. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);
  if (sfd < 0) {
    glog("signalfd: %s", strerror(errno));
    return 1;
  }
  int lfd = listen_on(socket_path);
  write_pidfile(pidfile_path);
  glog("listening on %s", socket_path);

  for (;;) {
    /* Timers first, as a late wake-up must not let a heartbeat that arrived after the deadline stretch it. */
    double now = now_ms();
    core_on_timer(now);
    wd_on_timer(now);
    child_reap_orphans();

    struct pollfd pfd[4 + MAX_CLIENTS];
    int map[4 + MAX_CLIENTS];
    nfds_t n = 0;
    pfd[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
    map[n++] = -1;
    pfd[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
    map[n++] = -2;
    int jpid = -1, jerr = -1;
    if (wd_job_fds(&jpid, &jerr)) {
      pfd[n] = (struct pollfd){.fd = jpid, .events = POLLIN};
      map[n++] = -3;
      pfd[n] = (struct pollfd){.fd = jerr, .events = POLLIN};
      map[n++] = -4;
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
      if (clients[i]) {
        pfd[n] = (struct pollfd){.fd = clients[i]->fd, .events = POLLIN | (clients[i]->out_off < clients[i]->out_len ? POLLOUT : 0)};
        map[n++] = i;
      }
    double next = min_timer(core_next_timer(), wd_next_timer());
    struct timespec ts, *tsp = NULL;
    if (next >= 0) {
      double wait = next - now_ms();
      if (wait < 0) wait = 0;
      if (wait > 3600e3) wait = 3600e3; /* a far deadline: wake up hourly and look again */
      ts.tv_sec = (time_t)(wait / 1000);
      ts.tv_nsec = (long)ceil(fmod(wait, 1000) * 1e6);
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      tsp = &ts;
    }
    int r = ppoll(pfd, n, tsp, NULL);
    if (r < 0 && errno != EINTR) {
      glog("ppoll: %s", strerror(errno));
      sleep(1);
    }
    if (r <= 0) continue;
    /* A deadline that passed while we slept wins over anything read in this round. */
    now = now_ms();
    core_on_timer(now);
    for (nfds_t k = 0; k < n; k++) {
      if (!pfd[k].revents) continue;
      if (map[k] == -1) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) core_shutdown();
      } else if (map[k] == -2) {
        int cfd;
        while ((cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
          int slot = -1;
          for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
            if (!clients[i]) slot = i;
          struct client *c = slot < 0 ? NULL : malloc(sizeof *c);
          if (!c) {
            glog("too many agents connected: refusing one");
            close(cfd);
            continue;
          }
          c->fd = cfd;
          c->len = 0;
          c->dead = false;
          c->out_len = c->out_off = c->next_len = 0;
          clients[slot] = c;
          core_connected();
        }
      } else if (map[k] == -3 || map[k] == -4) {
        wd_on_job(map[k] == -3, map[k] == -4);
      } else {
        int i = map[k];
        if (!clients[i] || clients[i]->fd != pfd[k].fd) continue;
        if ((pfd[k].revents & POLLOUT) && !flush(clients[i])) clients[i]->dead = true;
        if ((pfd[k].revents & ~POLLOUT) && !on_readable(clients[i])) drop_client(i);
      }
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
      if (clients[i] && clients[i]->dead) drop_client(i);
  }
}
