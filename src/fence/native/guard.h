/*
 * understudy fence guard: a small native process (see docs/architecture.md,
 * "The fence guard"). Shared declarations of its parts:
 *   main.c      socket server, event loop, signals, pidfile
 *   core.c      arm/disarm/deadline and the fence itself
 *   watchdog.c  the Linux watchdog device, fed up to lease_end - margin - timeout
 *   child.c     children: execvp argv, own process group, timeout kills the group
 *   json.c      the wire format (one JSON message per line) both ways
 */
#ifndef UNDERSTUDY_GUARD_H
#define UNDERSTUDY_GUARD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define GUARD_MAX_LINE 65536
#define GUARD_MAX_ARGV 64
#define GUARD_ARGV_BYTES 8192

/* ---------------------------------------------------------------- clock and log (main.c) */

/* CLOCK_MONOTONIC in milliseconds: the agent's Clock.systemMonotonicMs(). */
double now_ms(void);
void glog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Send a reply line (without newline) to every connected agent. */
void broadcast(const char *line);
/* Remove the socket and pidfile, log, exit. */
void guard_exit(int code) __attribute__((noreturn));

/* ---------------------------------------------------------------- json.c */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
  enum jtype type;
  bool b;
  double num;
  const char *str; /* J_STR: NUL-terminated, no embedded NUL */
  const char *key; /* member of an object: its key */
  struct jval *child, *next;
};

#define JSON_MAX_NODES 2048
struct jdoc {
  struct jval nodes[JSON_MAX_NODES];
  size_t used;
  char strings[GUARD_MAX_LINE + 16];
  size_t sused;
};

/* Parse one message; NULL with *err set when it is not valid JSON (or too big, too deep). */
struct jval *json_parse(struct jdoc *d, const char *text, size_t len, const char **err);
const struct jval *json_get(const struct jval *obj, const char *key);
/* Append s as a JSON string literal to buf (bounded; truncates safely). */
void json_put_str(char *buf, size_t cap, size_t *len, const char *s);

/* ---------------------------------------------------------------- child.c */

struct argvbuf {
  int argc;
  size_t off[GUARD_MAX_ARGV];
  char store[GUARD_ARGV_BYTES];
};

/* Fill from a JSON array of non-empty strings; false (with why) if it is not one or too big. */
bool argv_from_json(struct argvbuf *a, const struct jval *arr, const char **why);
/* The argv as pointers into a->store, NULL-terminated; out must hold GUARD_MAX_ARGV + 1. */
void argv_ptrs(const struct argvbuf *a, char **out);

/* Without a pidfd, how often a child's exit is looked for. */
#define CHILD_POLL_MS 20

struct child {
  pid_t pid;
  int pidfd;
  int errfd;
  double kill_at;
  bool timed_out;
  int status; /* waitpid status once reaped */
  char err[2048];
  size_t errlen;
};

/* Start argv (execvp, own process group, stdin/stdout /dev/null, stderr captured). 0 or -errno. */
int child_start(struct child *c, char *const argv[], double timeout_ms);
/* Read what the child wrote on stderr so far (non-blocking). */
void child_drain(struct child *c);
/* The child's pidfd is readable: reap it. */
void child_reap(struct child *c);
/* Timed out: SIGKILL the whole group and close the fds; the leader is reaped later if it is slow to die. */
void child_kill(struct child *c);
void child_reap_orphans(void);
/* Run to completion, never longer than timeout_ms (then the group is killed). 0, or -errno if it could not start. */
int child_run(char *const argv[], double timeout_ms, struct child *c);
/* "exit N", "killed by signal N", "timed out after N ms" */
void child_describe(const struct child *c, double timeout_ms, char *buf, size_t cap);
bool child_ok(const struct child *c);

/* ---------------------------------------------------------------- watchdog.c */

struct wd_settings {
  char mode[16];
  char device[PATH_MAX];
  long timeout_s;
  double safety_margin_ms;
};

extern const char *wd_sysfs_root;
bool wd_settings_from_json(struct wd_settings *s, const struct jval *v, const char **why);
void wd_configure(const struct wd_settings *s /* NULL: off */);
void wd_hold(double lease_end_ms);
void wd_pause(void);
void wd_release(const char *why);
bool wd_leave_running(void);
/* Event loop hooks: the next timer (or -1), fds to poll, and what to do when they fire. */
double wd_next_timer(void);
void wd_on_timer(double now);
int wd_job_fds(int *pidfd, int *errfd);
void wd_on_job(bool pid_ready, bool err_ready);
/* Stop a running preparation (the fence starts). */
void wd_abort_job(void);

/* ---------------------------------------------------------------- core.c */

void core_handle(const struct jval *msg);
void core_connected(void);
void core_disconnected(void);
void core_shutdown(void);
double core_next_timer(void);
void core_on_timer(double now);

#endif
