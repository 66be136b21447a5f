/*
 * The fence guard's logic: it holds the primary's lease deadline as last
 * reported, and if the deadline passes with no new heartbeat (agent frozen,
 * killed, stuck on I/O) it drops the VIP and stops the daemon itself, then
 * exits. The deadline is an absolute time on the host's CLOCK_MONOTONIC, the
 * agent's Clock.systemMonotonicMs(), so a heartbeat delivered late cannot
 * stretch it: the guard fires at most its own wake-up latency after the
 * agent would have, well inside the fence margin before etcd expires the lease.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "../../native-proc-start.h"

#define DROP_VIP_TIMEOUT_MS 2000
#define STOP_TIMEOUT_MS 10000
#define SIGKILL_AFTER_MS 1000

struct orders {
  bool has_drop, has_track, has_pidfile, has_stop;
  struct argvbuf drop, stop;
  char track[PATH_MAX];
  char pidfile[PATH_MAX];
};

static struct {
  bool armed;
  double deadline;
  struct orders orders;
  int clients;
  bool fenced;
} g;

/* A string or null member; false if it is something else. */
static bool opt_path(const struct jval *o, const char *key, bool *has, char *out, size_t cap) {
  const struct jval *v = json_get(o, key);
  *has = false;
  if (!v || v->type == J_NULL) return true;
  if (v->type != J_STR || !v->str[0] || strlen(v->str) >= cap) return false;
  snprintf(out, cap, "%s", v->str);
  *has = true;
  return true;
}

static bool opt_argv(const struct jval *o, const char *key, bool *has, struct argvbuf *out, const char **why) {
  const struct jval *v = json_get(o, key);
  *has = false;
  if (!v || v->type == J_NULL) return true;
  if (!argv_from_json(out, v, why)) return false;
  *has = true;
  return true;
}

static bool orders_from_json(struct orders *o, const struct jval *v, const char **why) {
  memset(o, 0, sizeof *o);
  if (!v || v->type != J_OBJ) return (*why = "orders is not an object"), false;
  if (!opt_argv(v, "dropVip", &o->has_drop, &o->drop, why)) return false;
  if (!opt_argv(v, "stopArgv", &o->has_stop, &o->stop, why)) return false;
  if (!opt_path(v, "keepalivedTrackFile", &o->has_track, o->track, sizeof o->track)) return (*why = "keepalivedTrackFile is not a path"), false;
  if (!opt_path(v, "daemonPidfile", &o->has_pidfile, o->pidfile, sizeof o->pidfile)) return (*why = "daemonPidfile is not a path"), false;
  return true;
}

static void fence(bool signalled);

void core_handle(const struct jval *msg) {
  if (g.fenced) return;
  const char *why = "not an object with watchdog, disarm or arm";
  const struct jval *w = json_get(msg, "watchdog");
  if (w) {
    struct wd_settings s;
    if (w->type == J_NULL) wd_configure(NULL);
    else if (wd_settings_from_json(&s, w, &why)) wd_configure(&s);
    else glog("ignoring a malformed message: %s", why);
    return;
  }
  if (json_get(msg, "disarm")) {
    g.armed = false;
    memset(&g.orders, 0, sizeof g.orders);
    wd_release("disarmed (no longer primary)");
    return;
  }
  const struct jval *arm = json_get(msg, "arm");
  const struct jval *d = json_get(arm, "deadlineMs"), *e = json_get(arm, "leaseEndMs");
  struct orders o;
  if (!arm || arm->type != J_OBJ) why = "not an object with watchdog, disarm or arm";
  else if (!d || d->type != J_NUM) why = "arm.deadlineMs is not a number";
  else if (e && e->type != J_NUM && e->type != J_NULL) why = "arm.leaseEndMs is not a number";
  else if (orders_from_json(&o, json_get(arm, "orders"), &why)) {
    g.orders = o;
    g.deadline = d->num;
    g.armed = true;
    double remaining = d->num - now_ms();
    if (e && e->type == J_NUM && remaining > 0) wd_hold(e->num);
    return;
  }
  glog("ignoring a malformed message: %s", why);
}

void core_connected(void) {
  g.clients++;
}

/* An agent went away. Disarmed and alone: nothing to guard. Armed: wait for the deadline (a restarted agent may reconnect). */
void core_disconnected(void) {
  if (g.clients > 0) g.clients--;
  if (g.clients == 0 && !g.armed && !g.fenced) guard_exit(0);
}

/* The guard itself is being stopped: fence now if armed, else just go. */
void core_shutdown(void) {
  if (g.fenced) return;
  if (g.armed) fence(true);
  else guard_exit(0);
}

double core_next_timer(void) {
  return g.armed && !g.fenced ? g.deadline : -1;
}

void core_on_timer(double now) {
  if (g.armed && !g.fenced && now >= g.deadline) fence(false);
}

static void sleep_ms(double ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(fmod(ms, 1000) * 1e6)};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
  }
}

/* The daemon's record, "PID [START]\n" (START: field 22 of /proc/PID/stat, written by
   understudy-pidexec and the agent; a bare pid is still read). start is "" when absent. */
static pid_t read_pid(const char *file, char *start, size_t size) {
  char buf[64];
  start[0] = '\0';
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *s = buf + strspn(buf, " \t\n");
  size_t len = strspn(s, "0123456789");
  if (len == 0 || len > 9 || (s[len] && !strchr(" \t\n", s[len]))) return -1;
  long pid = strtol(s, NULL, 10);
  char *t = s + len + strspn(s + len, " \t");
  size_t tl = strspn(t, "0123456789");
  if (tl > 0 && tl < size && (!t[tl] || strchr(" \t\n", t[tl]))) {
    memcpy(start, t, tl);
    start[tl] = '\0';
  }
  return pid > 1 ? (pid_t)pid : -1;
}

/* The start time of pid (native-proc-start.h): 1 read, 0 no such process, -1 cannot tell. */
static int proc_start(pid_t pid, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  return proc_start_time(path, out, size);
}

/* Whether the recorded daemon may still hold pid: no start time recorded, the process there started
   then, or /proc cannot tell (signalled as before: a running daemon must never be left alone). */
static bool maybe_same_process(pid_t pid, const char *start) {
  if (!start[0]) return true;
  char now[32];
  int r = proc_start(pid, now, sizeof now);
  return r < 0 || (r == 1 && strcmp(now, start) == 0);
}

/* Whether another process now holds pid (it started at another time than the recorded daemon). */
static bool reused(pid_t pid, const char *start) {
  char now[32];
  return start[0] && proc_start(pid, now, sizeof now) == 1 && strcmp(now, start) != 0;
}

/* Whether pid still runs. A zombie has exited: its parent (perhaps the frozen agent) just has not reaped it. */
static bool alive(pid_t pid) {
  char path[64], stat[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return false;
  stat[n] = '\0';
  char *rp = strrchr(stat, ')');
  return !(rp && rp[1] == ' ' && rp[2] == 'Z');
}

static bool write_track_file(const char *file) {
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    glog("keepalived track file: cannot open %s: %s", file, strerror(errno));
    return false;
  }
  bool ok = write(fd, "1\n", 2) == 2;
  int e = errno;
  if (close(fd) != 0) ok = false;
  if (ok) glog("keepalived track file %s set to 1 (FAULT)", file);
  else glog("keepalived track file: cannot write %s: %s", file, strerror(e));
  return ok;
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = '\0';
}

static void fence(bool signalled) {
  struct orders *o = &g.orders;
  double started = now_ms();
  double late = started - g.deadline;
  g.armed = false;
  g.fenced = true;
  wd_pause();
  wd_abort_job();
  bool clean = true;
  if (signalled)
    glog("stopped by a signal while armed: fencing now (dropping the VIP, stopping the daemon); "
         "CLOCK_MONOTONIC %.3f ms, %.3f ms before the deadline", started, late < 0 ? -late : 0);
  else
    glog("lease deadline passed without a heartbeat: fencing (dropping the VIP, stopping the daemon); "
         "CLOCK_MONOTONIC %.3f ms, %.3f ms after the deadline", started, late > 0 ? late : 0);
  if (o->has_track && !write_track_file(o->track)) clean = false;
  char *argv[GUARD_MAX_ARGV + 1];
  char how[128];
  struct child c;
  if (o->has_drop) {
    argv_ptrs(&o->drop, argv);
    int r = child_run(argv, DROP_VIP_TIMEOUT_MS, &c);
    trim(c.err);
    /* `ip addr del` of an address that is not there: already gone, which is the goal. */
    bool ok = r == 0 && child_ok(&c);
    bool gone = ok || (r == 0 && strstr(c.err, "Cannot assign requested address"));
    if (!gone) clean = false;
    if (r < 0) glog("VIP removal: cannot start %s: %s", argv[0], strerror(-r));
    else if (ok) glog("VIP removed");
    else if (gone) glog("VIP was not present");
    else {
      child_describe(&c, DROP_VIP_TIMEOUT_MS, how, sizeof how);
      glog("VIP removal: %s %s", how, c.err);
    }
  }
  if (o->has_pidfile) {
    char start[32];
    pid_t pid = read_pid(o->pidfile, start, sizeof start);
    if (pid > 0 && !maybe_same_process(pid, start)) {
      /* The daemon exited and the kernel gave its pid to another process (a busy host, a pidfile
         the frozen agent never cleared): signalling it, or its group, would kill a bystander. */
      char now[32];
      if (proc_start(pid, now, sizeof now) == 1)
        glog("daemon pid %d not signalled: the process now holding it started at tick %s, the daemon at %s (the pid was reused; the daemon has exited)", (int)pid, now, start);
      else
        glog("daemon pid %d has exited: nothing to stop", (int)pid);
    } else if (pid > 0) {
      /* The process backend starts the daemon as a process-group leader: signal the whole group,
         so its children (sshd's per-connection processes, an upload in progress) do not outlive
         the fence and keep serving a client after the VIP moved. */
      pid_t target = getpgid(pid) == pid ? -pid : pid;
      kill(target, SIGTERM);
      for (int waited = 0; waited < SIGKILL_AFTER_MS && alive(pid) && maybe_same_process(pid, start); waited += 50) sleep_ms(50);
      bool forced = alive(pid) && maybe_same_process(pid, start);
      if (forced) kill(target, SIGKILL);
      /* Members that ignored SIGTERM after the leader exited: none may stay. Not when another
         process took the leader's pid meanwhile (a pid still naming a live group is never reused,
         so the group there is that process's own). */
      if (target < 0 && !reused(pid, start) && kill(target, 0) == 0) kill(target, SIGKILL);
      if (forced)
        glog("daemon pid %d stopped%s (SIGKILL: still running %d ms after SIGTERM)", (int)pid, target < 0 ? " with its process group" : "", SIGKILL_AFTER_MS);
      else
        glog("daemon pid %d stopped%s (exited on SIGTERM)", (int)pid, target < 0 ? " with its process group" : "");
    }
  } else if (o->has_stop) {
    argv_ptrs(&o->stop, argv);
    int r = child_run(argv, STOP_TIMEOUT_MS, &c);
    trim(c.err);
    if (r < 0) {
      clean = false;
      glog("daemon stop: cannot start %s: %s", argv[0], strerror(-r));
    } else if (child_ok(&c)) {
      glog("daemon stopped");
    } else {
      clean = false;
      child_describe(&c, STOP_TIMEOUT_MS, how, sizeof how);
      glog("daemon stop: %s %s", how, c.err);
    }
  }
  if (clean) wd_release("fenced cleanly");
  else if (wd_leave_running()) {
    /* Stay, holding the device open and unfed, until the kernel resets the node: a watchdog
       closed without the magic character is fed once more by the kernel ("watchdog did not
       stop!"), so exiting would move the reset to exit + timeout, past lease_end - safety_margin. */
    return;
  }
  guard_exit(0);
}
