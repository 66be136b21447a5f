/*
 * Hardware-grade fencing (docs/architecture.md, "The fence guard"): the
 * Linux watchdog device, held open while this node is primary. Checked when
 * an agent sends its settings (sysfs nowayout and state; the timeout set with
 * util-linux `wdctl --settimeout` and read back from sysfs), opened on a
 * primary's heartbeat, fed on a timer but never past lease_end -
 * safety_margin - timeout, so that if feeding stops (the guard frozen, the
 * host stalled) the reset lands before etcd can expire the lease. Magic close
 * on disarm and after a clean fence; left running after a fence that failed,
 * so the reset is the fence.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"

/* How early the last feed before the bound is aimed, for timer lateness. */
#define FINAL_FEED_LEAD_MS 50
#define WDCTL_TIMEOUT_MS 5000

const char *wd_sysfs_root = "/sys/class/watchdog";

enum wd_state { WD_OFF, WD_UNAVAILABLE, WD_READY, WD_ACTIVE };
static const char *const state_names[] = {"off", "unavailable", "ready", "active"};

static struct {
  enum wd_state state;
  char problem[1024];
  bool has_settings;
  struct wd_settings settings;
  /* The device last prepared successfully, and the timeout it has. */
  char device[PATH_MAX];
  long timeout_s;
  int fd;
  double lease_end;
  double feed_at; /* < 0: no feed timer */
  bool has_pending;
  struct wd_settings pending;
  /* A preparation in flight: wdctl running for `preparing`. */
  bool job_running;
  struct child job;
  struct wd_settings preparing;
  char sysfs[PATH_MAX];
} wd = {.state = WD_OFF, .fd = -1, .lease_end = -INFINITY, .feed_at = -1};

/* Append to a reply, never past its end (a truncated reply is not sent). */
static bool app(char *buf, size_t cap, size_t *n, const char *text) {
  size_t l = strlen(text);
  if (*n + l + 1 > cap) return false;
  memcpy(buf + *n, text, l + 1);
  *n += l;
  return true;
}

static void report(void) {
  /* Bounded like a client's reply buffer (main.c): a device path that escapes to more is refused. */
  static char line[8 * PATH_MAX];
  char num[32];
  size_t n = 0;
  bool ok = app(line, sizeof line, &n, "{\"watchdog\":{\"state\":\"") && app(line, sizeof line, &n, state_names[wd.state]) &&
            app(line, sizeof line, &n, "\"");
  if (ok && wd.state != WD_OFF) {
    ok = app(line, sizeof line, &n, ",\"device\":");
    json_put_str(line, sizeof line, &n, wd.state == WD_UNAVAILABLE ? wd.settings.device : wd.device);
    if (wd.state == WD_UNAVAILABLE) {
      ok = ok && app(line, sizeof line, &n, ",\"problem\":");
      json_put_str(line, sizeof line, &n, wd.problem);
    } else {
      snprintf(num, sizeof num, "%ld", wd.timeout_s);
      ok = ok && app(line, sizeof line, &n, ",\"timeoutS\":") && app(line, sizeof line, &n, num);
    }
  }
  if (ok && app(line, sizeof line, &n, "}}")) broadcast(line);
  else glog("a watchdog reply did not fit: not sent");
}

static void set(enum wd_state s) {
  wd.state = s;
  report();
}

static bool same(const struct wd_settings *a, const struct wd_settings *b) {
  return strcmp(a->mode, b->mode) == 0 && strcmp(a->device, b->device) == 0 && a->timeout_s == b->timeout_s &&
         a->safety_margin_ms == b->safety_margin_ms;
}

bool wd_settings_from_json(struct wd_settings *s, const struct jval *v, const char **why) {
  const struct jval *mode = json_get(v, "mode"), *dev = json_get(v, "device"), *t = json_get(v, "timeoutS"),
                    *m = json_get(v, "safetyMarginMs");
  memset(s, 0, sizeof *s);
  if (!mode || mode->type != J_STR || (strcmp(mode->str, "automatic") != 0 && strcmp(mode->str, "required") != 0))
    *why = "watchdog.mode is not automatic or required";
  else if (!dev || dev->type != J_STR || !dev->str[0] || strlen(dev->str) >= sizeof s->device)
    *why = "watchdog.device is not a path";
  else if (!t || t->type != J_NUM || t->num != floor(t->num) || t->num < 0 || t->num > 86400)
    *why = "watchdog.timeoutS is not a whole number of seconds";
  else if (!m || m->type != J_NUM || !isfinite(m->num) || m->num < 0)
    *why = "watchdog.safetyMarginMs is not a number";
  else {
    snprintf(s->mode, sizeof s->mode, "%s", mode->str);
    snprintf(s->device, sizeof s->device, "%s", dev->str);
    s->timeout_s = (long)t->num;
    s->safety_margin_ms = m->num;
    return true;
  }
  return false;
}

/* ------------------------------------------------------------ the device through the kernel's API */

/* sysfs directory of a device path; false with the problem if it is not a watchdog name. */
static bool sysfs_dir(const char *device, char *out, size_t cap, char *problem, size_t pcap) {
  const char *name = strrchr(device, '/');
  name = name ? name + 1 : device;
  const char *id = NULL;
  if (strcmp(name, "watchdog") == 0) id = "watchdog0"; /* the legacy alias of the first device */
  else if (strncmp(name, "watchdog", 8) == 0 && name[8] && strspn(name + 8, "0123456789") == strlen(name + 8)) id = name;
  if (!id) {
    snprintf(problem, pcap, "%s is not a watchdog device name (/dev/watchdog or /dev/watchdogN)", device);
    return false;
  }
  snprintf(out, cap, "%s/%s", wd_sysfs_root, id);
  return true;
}

static bool read_attr(const char *attr, char *out, size_t cap) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", wd.sysfs, attr);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, out, cap - 1);
  int e = errno;
  if (fd >= 0) close(fd);
  if (n < 0) {
    snprintf(wd.problem, sizeof wd.problem,
             "cannot read %s (is the driver loaded, e.g. modprobe softdog, and CONFIG_WATCHDOG_SYSFS on?): %s", path, strerror(e));
    return false;
  }
  out[n] = '\0';
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
  return true;
}

static void prepared(bool ok) {
  const struct wd_settings *s = &wd.settings;
  if (ok) {
    snprintf(wd.device, sizeof wd.device, "%s", s->device);
    glog("watchdog %s ready: timeout %lds, fed until %.0fms + timeout before the lease ends", s->device, wd.timeout_s, s->safety_margin_ms);
    set(WD_READY);
  } else {
    glog("watchdog %s unavailable: %s", s->device, wd.problem);
    set(WD_UNAVAILABLE);
  }
}

/* First half of prepare: checks before anything touches the device, then wdctl (asynchronous). */
static void prepare_start(void) {
  char v[64];
  const struct wd_settings *s = &wd.settings;
  if (!sysfs_dir(s->device, wd.sysfs, sizeof wd.sysfs, wd.problem, sizeof wd.problem)) return prepared(false);
  if (!read_attr("nowayout", v, sizeof v)) return prepared(false);
  if (strcmp(v, "0") != 0) {
    snprintf(wd.problem, sizeof wd.problem, "nowayout is set: once opened it could never be stopped, and a standby would be reset; load the driver with nowayout=0");
    return prepared(false);
  }
  if (!read_attr("state", v, sizeof v)) return prepared(false);
  if (strcmp(v, "inactive") != 0) {
    snprintf(wd.problem, sizeof wd.problem, "it is already %s: something else holds it (systemd RuntimeWatchdogSec=, a watchdog daemon)", v);
    return prepared(false);
  }
  char secs[32];
  snprintf(secs, sizeof secs, "%ld", s->timeout_s);
  char *argv[] = {"wdctl", "--settimeout", secs, (char *)s->device, NULL};
  int r = child_start(&wd.job, argv, WDCTL_TIMEOUT_MS);
  if (r < 0) {
    snprintf(wd.problem, sizeof wd.problem, "cannot run wdctl: %s", strerror(-r));
    return prepared(false);
  }
  wd.job_running = true;
}

/* Second half, once wdctl is done: the timeout it left, and that it left the device stopped. */
static void prepare_finish(void) {
  wd.job_running = false;
  char v[64];
  if (wd.job.timed_out) {
    snprintf(wd.problem, sizeof wd.problem, "wdctl --settimeout timed out after %dms", WDCTL_TIMEOUT_MS);
    return prepared(false);
  }
  if (!read_attr("timeout", v, sizeof v)) return prepared(false);
  char *end;
  long now = strtol(v, &end, 10);
  if (!v[0] || *end || now <= 0) {
    snprintf(wd.problem, sizeof wd.problem, "unreadable timeout \"%.32s\"", v);
    return prepared(false);
  }
  if (now > wd.settings.timeout_s) {
    char why[600] = "";
    if (!child_ok(&wd.job)) {
      char first[512];
      snprintf(first, sizeof first, "%s", wd.job.err);
      first[strcspn(first, "\n")] = '\0';
      snprintf(why, sizeof why, ": wdctl --settimeout exited %d: %s", WIFEXITED(wd.job.status) ? WEXITSTATUS(wd.job.status) : -1, first);
    }
    snprintf(wd.problem, sizeof wd.problem, "its timeout is %lds, longer than the %lds the lease allows%s", now, wd.settings.timeout_s, why);
    return prepared(false);
  }
  if (!read_attr("state", v, sizeof v)) return prepared(false);
  if (strcmp(v, "inactive") != 0) {
    snprintf(wd.problem, sizeof wd.problem, "wdctl left it running (nowayout?)");
    return prepared(false);
  }
  wd.timeout_s = now;
  prepared(true);
}

void wd_abort_job(void) {
  if (!wd.job_running) return;
  child_kill(&wd.job);
  wd.job_running = false;
}

int wd_job_fds(int *pidfd, int *errfd) {
  if (!wd.job_running) return 0;
  *pidfd = wd.job.pidfd;
  *errfd = wd.job.errfd;
  return 1;
}

void wd_on_job(bool pid_ready, bool err_ready) {
  if (!wd.job_running) return;
  if (err_ready) child_drain(&wd.job);
  if (pid_ready) child_reap(&wd.job);
  if (wd.job.pid < 0) prepare_finish();
}

/* ------------------------------------------------------------ the keeper */

void wd_configure(const struct wd_settings *s) {
  if (wd.state == WD_ACTIVE) {
    if (!s) {
      wd_release("the agent turned the watchdog off");
      wd.has_settings = false;
      set(WD_OFF);
    } else {
      /* New settings (a restarted agent's) take effect once the device is stopped. */
      if (!same(s, &wd.settings)) {
        wd.pending = *s;
        wd.has_pending = true;
      }
      report();
    }
    return;
  }
  if (s && wd.has_settings && same(s, &wd.settings) && wd.state != WD_UNAVAILABLE) {
    report();
    return;
  }
  wd_abort_job(); /* a preparation for other settings no longer matters */
  wd.has_settings = s != NULL;
  if (!s) {
    set(WD_OFF);
    return;
  }
  wd.settings = *s;
  prepare_start();
}

/* The last moment a feed still lets the reset land before leaseEnd - safety_margin. */
static double last_feed_at(void) {
  return wd.lease_end - (wd.has_settings ? wd.settings.safety_margin_ms : 0) - (double)wd.timeout_s * 1000;
}

static void feed(double now) {
  wd.feed_at = -1;
  if (wd.state != WD_ACTIVE || wd.fd < 0) return;
  double last = last_feed_at();
  if (now > last) return; /* no more: the next heartbeat may allow it again */
  if (write(wd.fd, "1", 1) != 1) glog("watchdog keepalive failed: %s", strerror(errno));
  /* The last feed is aimed a little before the bound, so a timer that fires late still lands in time. */
  double step = wd.timeout_s * 250.0 < 500 ? wd.timeout_s * 250.0 : 500;
  double next = now + step;
  if (next > last) next = last - FINAL_FEED_LEAD_MS;
  if (next > now) wd.feed_at = next;
}

void wd_hold(double lease_end) {
  if (!wd.has_settings || (wd.state != WD_READY && wd.state != WD_ACTIVE)) return;
  wd.lease_end = lease_end;
  double now = now_ms();
  if (wd.state == WD_READY) {
    if (last_feed_at() < now) {
      /* Opening starts the countdown now: only with the whole timeout still ahead of the bound. */
      glog("watchdog not started: too little lease left to open it safely");
      report();
      return;
    }
    wd.fd = open(wd.device, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (wd.fd < 0) {
      snprintf(wd.problem, sizeof wd.problem, "cannot open: %s", strerror(errno));
      glog("watchdog %s %s", wd.settings.device, wd.problem);
      set(WD_UNAVAILABLE);
      return;
    }
    glog("watchdog %s started (timeout %lds)", wd.device, wd.timeout_s);
    set(WD_ACTIVE);
  }
  feed(now);
}

double wd_next_timer(void) {
  double t = wd.feed_at;
  if (wd.job_running) {
    /* wdctl's timeout, and without a pidfd the next look at whether it exited. */
    double j = wd.job.pidfd < 0 ? now_ms() + CHILD_POLL_MS : wd.job.kill_at;
    if (j > wd.job.kill_at) j = wd.job.kill_at;
    if (t < 0 || j < t) t = j;
  }
  return t;
}

void wd_on_timer(double now) {
  if (wd.feed_at >= 0 && now >= wd.feed_at) feed(now);
  if (!wd.job_running) return;
  if (now >= wd.job.kill_at) {
    child_kill(&wd.job); /* the whole group; prepare_finish reports the timeout */
    prepare_finish();
  } else if (wd.job.pidfd < 0) {
    wd_on_job(true, false);
  }
}

void wd_pause(void) {
  wd.feed_at = -1;
}

void wd_release(const char *why) {
  wd_pause();
  if (wd.state != WD_ACTIVE || wd.fd < 0) return;
  int fd = wd.fd;
  wd.fd = -1;
  bool ok = write(fd, "V", 1) == 1;
  int e = errno;
  close(fd);
  if (!ok) {
    glog("watchdog stop failed (%s): the node will be reset", strerror(e));
    return;
  }
  glog("watchdog stopped: %s", why);
  set(WD_READY);
  if (wd.has_pending) {
    struct wd_settings p = wd.pending;
    wd.has_pending = false;
    wd_configure(&p);
  }
}

bool wd_leave_running(void) {
  wd_pause();
  if (wd.state != WD_ACTIVE) return false;
  glog("fence incomplete: the watchdog is left running and resets this node within %lds", wd.timeout_s);
  return true;
}
