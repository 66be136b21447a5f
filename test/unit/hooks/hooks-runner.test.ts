// Hooks (src/hooks/runner.ts): the exact argv and UNDERSTUDY_* environment,
// pre_promote's veto on a non-zero exit, a timeout or a failure to start,
// other hooks' failures logged and never thrown, unconfigured hooks as no-ops.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { UnderstudyError } from "../../../src/errors/catalogue.js";
import { HOOK_EVENTS, Hooks, type HookCommands, type HookContext, type HookEvent, type HookOutcome } from "../../../src/hooks/runner.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../../src/platform/command.js";
import { FakeClock } from "../../fakes/clock.js";
import { StrictCommandRunner } from "../../fakes/command.js";

function capture() {
  const lines: string[] = [];
  const log = pino({ level: "trace" }, { write: (s: string) => void lines.push(s) });
  return { log, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => lines.join("") };
}

function setup(commands: HookCommands, timeoutMs = 10_000, runner: CommandRunner = new StrictCommandRunner()) {
  const clock = new FakeClock();
  const logs = capture();
  const hooks = new Hooks({ commands, timeoutMs }, { runner, clock, log: logs.log });
  return { hooks, clock, logs, runner };
}

const CTX: HookContext = { role: "primary", previousRole: "standby", term: 7, node: "n1", cluster: "sftp-prod", reason: "failover" };
const ARGV = ["/usr/local/libexec/understudy-hook", "--verbose"];

test("a hook runs its exact argv with every UNDERSTUDY_* variable and the timeout", async () => {
  const runner = new StrictCommandRunner().expect(ARGV);
  const { hooks } = setup({ on_role_change: ARGV }, 3000, runner);
  const outcome = await hooks.run("on_role_change", CTX);
  runner.done();
  assert.deepEqual(runner.calls[0]!.options, {
    timeoutMs: 3000,
    env: {
      UNDERSTUDY_EVENT: "on_role_change",
      UNDERSTUDY_ROLE: "primary",
      UNDERSTUDY_PREVIOUS_ROLE: "standby",
      UNDERSTUDY_TERM: "7",
      UNDERSTUDY_NODE: "n1",
      UNDERSTUDY_CLUSTER: "sftp-prod",
      UNDERSTUDY_REASON: "failover",
    },
  } satisfies CommandOptions);
  assert.deepEqual(outcome, { ran: true, ok: true, code: 0, timedOut: false, ms: 0, stderrTail: "", problem: null });
});

test("post_sync adds UNDERSTUDY_GENERATION; unknown values are empty strings, never missing", async () => {
  const runner = new StrictCommandRunner().expect(["/bin/sync-done"]).expect(["/bin/demoted"]);
  const { hooks } = setup({ post_sync: ["/bin/sync-done"], on_demote: ["/bin/demoted"] }, 10_000, runner);
  await hooks.run("post_sync", { role: "standby", term: 3, node: "n2", cluster: "c", reason: "generation applied", generation: 42 });
  await hooks.run("on_demote", { role: "standby", term: null, node: "n2", cluster: "c", reason: "lease deadline", generation: 42 });
  runner.done();
  assert.deepEqual(runner.calls[0]!.options?.env, {
    UNDERSTUDY_EVENT: "post_sync",
    UNDERSTUDY_ROLE: "standby",
    UNDERSTUDY_PREVIOUS_ROLE: "",
    UNDERSTUDY_TERM: "3",
    UNDERSTUDY_NODE: "n2",
    UNDERSTUDY_CLUSTER: "c",
    UNDERSTUDY_REASON: "generation applied",
    UNDERSTUDY_GENERATION: "42",
  });
  const demoteEnv = runner.calls[1]!.options?.env ?? {};
  assert.equal(demoteEnv.UNDERSTUDY_TERM, "");
  assert.equal(demoteEnv.UNDERSTUDY_PREVIOUS_ROLE, "");
  assert.equal("UNDERSTUDY_GENERATION" in demoteEnv, false, "only post_sync gets the generation");
});

test("an event without a command resolves { ran: false, ok: true } at once and runs nothing", async () => {
  const runner = new StrictCommandRunner();
  const { hooks } = setup({}, 10_000, runner);
  for (const event of HOOK_EVENTS) {
    assert.equal(hooks.configured(event), false);
    const o = await hooks.run(event, CTX);
    assert.equal(o.ran, false, event);
    assert.equal(o.ok, true, event);
    hooks.fire(event, CTX);
  }
  assert.equal(runner.calls.length, 0);
  await hooks.close();
});

const FAILURES: { name: string; arrange: (r: StrictCommandRunner, argv: string[]) => void; timedOut: boolean; code: number | null; problem: RegExp }[] = [
  { name: "a non-zero exit", arrange: (r, a) => r.expect(a, { code: 3, stderr: "NFS mount /srv/sftp missing\n" }), timedOut: false, code: 3, problem: /exited 3: NFS mount \/srv\/sftp missing/ },
  { name: "a kill by a signal", arrange: (r, a) => r.expect(a, { code: null, signal: "SIGSEGV" }), timedOut: false, code: null, problem: /killed by SIGSEGV/ },
  {
    name: "a timeout",
    arrange: (r, a) => r.expectError(a, new UnderstudyError("US_E_COMMAND_TIMEOUT", { argv0: a[0], timeout_ms: 10_000 })),
    timedOut: true,
    code: null,
    problem: /killed after the 10000 ms timeout/,
  },
  {
    name: "a program that cannot be started",
    arrange: (r, a) => r.expectError(a, Object.assign(new Error(`spawn ${a[0]} ENOENT`), { code: "ENOENT" })),
    timedOut: false,
    code: null,
    problem: /could not be started: spawn \/opt\/check ENOENT/,
  },
];

for (const f of FAILURES) {
  test(`pre_promote: ${f.name} is a veto (ok false), logged as US_E_HOOK_VETO`, async () => {
    const runner = new StrictCommandRunner();
    f.arrange(runner, ["/opt/check", "--primary"]);
    const { hooks, logs } = setup({ pre_promote: ["/opt/check", "--primary"] }, 10_000, runner);
    const o = await hooks.run("pre_promote", { ...CTX, previousRole: "standby", reason: "won the election" });
    runner.done();
    assert.equal(o.ran, true);
    assert.equal(o.ok, false);
    assert.equal(o.timedOut, f.timedOut);
    assert.equal(o.code, f.code);
    assert.match(o.problem ?? "", /^US_E_HOOK_VETO: pre_promote hook \/opt\/check vetoed the promotion: /);
    assert.match(o.problem ?? "", f.problem);
    const warn = logs.entries().find((e) => e.level === 40);
    assert.ok(warn, "the veto is logged as a warning");
    assert.match(String(warn.msg), /US_E_HOOK_VETO/);
    assert.equal(warn.hook, "pre_promote");
    assert.equal(logs.text().includes("--primary"), false, "only the program is logged, not its arguments");
  });
}

const NOTIFY_ONLY: HookEvent[] = ["on_role_change", "post_promote", "on_demote", "post_sync"];

test("other hooks: every kind of failure resolves ok false with US_E_HOOK_FAILED, logged, never thrown", async () => {
  for (const event of NOTIFY_ONLY) {
    for (const f of FAILURES) {
      const runner = new StrictCommandRunner();
      f.arrange(runner, ["/opt/check"]);
      const { hooks, logs } = setup({ [event]: ["/opt/check"] }, 10_000, runner);
      const o = await hooks.run(event, CTX);
      runner.done();
      assert.equal(o.ok, false, `${event}: ${f.name}`);
      assert.equal(o.timedOut, f.timedOut, `${event}: ${f.name}`);
      assert.match(o.problem ?? "", new RegExp(`^US_E_HOOK_FAILED: hook ${event} \\(/opt/check\\) failed: `));
      assert.ok(
        logs.entries().some((e) => e.level === 40 && String(e.msg).startsWith("US_E_HOOK_FAILED")),
        `${event}: ${f.name} logged`,
      );
    }
  }
});

test("a runner that never returns is given up on after the timeout plus a grace, as a timeout", async () => {
  const hanging: CommandRunner = { run: () => new Promise<CommandResult>(() => undefined) };
  const { hooks, clock } = setup({ pre_promote: ["/opt/slow"] }, 2000, hanging);
  const box: { outcome?: HookOutcome } = {};
  void hooks.run("pre_promote", CTX).then((o) => (box.outcome = o));
  await clock.advance(2999);
  assert.equal(box.outcome, undefined, "still waiting within timeout + grace");
  await clock.advance(1);
  const outcome = box.outcome as HookOutcome | undefined;
  assert.ok(outcome, "outcome");
  assert.equal(outcome.ok, false);
  assert.equal(outcome.timedOut, true);
  assert.equal(outcome.ms, 3000);
  assert.equal(clock.pendingTimers(), 0);
});

test("ms is measured on the injected clock, and stderrTail keeps the last 500 characters", async () => {
  const clock = new FakeClock();
  const logs = capture();
  const slow: CommandRunner = {
    run: async () => {
      await clock.sleep(1234);
      return { code: 1, signal: null, stdout: "", stderr: `${"a".repeat(1000)}${"z".repeat(400)}\n` };
    },
  };
  const hooks = new Hooks({ commands: { post_promote: ["/opt/x"] }, timeoutMs: 5000 }, { runner: slow, clock, log: logs.log });
  const pending = hooks.run("post_promote", CTX);
  await clock.advance(1234);
  const o = await pending;
  assert.equal(o.ms, 1234);
  assert.equal(o.stderrTail.length, 500);
  assert.ok(o.stderrTail.endsWith("z".repeat(400)), 'o.stderrTail.endsWith("z".repeat(400))');
});

test("fire() queues hooks and runs them one at a time, in order; close() waits for them", async () => {
  const runner = new StrictCommandRunner().expect(["/opt/promoted"]).expect(["/opt/changed"]).expect(["/opt/demoted"]);
  const { hooks } = setup({ post_promote: ["/opt/promoted"], on_role_change: ["/opt/changed"], on_demote: ["/opt/demoted"] }, 10_000, runner);
  hooks.fire("post_promote", CTX);
  hooks.fire("on_role_change", CTX);
  hooks.fire("on_demote", { ...CTX, role: "standby", previousRole: "primary" });
  await hooks.close();
  runner.done();
  assert.equal(runner.calls[2]!.options?.env?.UNDERSTUDY_ROLE, "standby");
});

test("onOutcome hears every hook that ran; a throwing listener does not make run() throw", async () => {
  const seen: [HookEvent, boolean][] = [];
  const runner = new StrictCommandRunner().expect(["/opt/a"]).expect(["/opt/b"], { code: 2 });
  const hooks = new Hooks(
    { commands: { post_promote: ["/opt/a"], on_demote: ["/opt/b"] }, timeoutMs: 1000 },
    {
      runner,
      clock: new FakeClock(),
      log: capture().log,
      onOutcome: (e, o) => {
        seen.push([e, o.ok]);
        throw new Error("listener bug");
      },
    },
  );
  assert.equal((await hooks.run("post_promote", CTX)).ok, true);
  assert.equal((await hooks.run("on_demote", CTX)).ok, false);
  assert.equal((await hooks.run("post_sync", CTX)).ran, false);
  assert.deepEqual(seen, [
    ["post_promote", true],
    ["on_demote", false],
  ]);
});

test("bad settings are refused at construction with US_E_HOOK_CONFIG", () => {
  const deps = { runner: new StrictCommandRunner(), clock: new FakeClock(), log: capture().log };
  const cases: { commands: HookCommands; timeoutMs: number; setting: string }[] = [
    { commands: {}, timeoutMs: 0, setting: "hooks.timeout" },
    { commands: {}, timeoutMs: Number.NaN, setting: "hooks.timeout" },
    { commands: { pre_promote: [] }, timeoutMs: 1000, setting: "hooks.pre_promote" },
    { commands: { post_sync: ["/opt/x", ""] }, timeoutMs: 1000, setting: "hooks.post_sync" },
  ];
  for (const c of cases) {
    assert.throws(
      () => new Hooks(c, deps),
      (e: unknown) => e instanceof UnderstudyError && e.code === "US_E_HOOK_CONFIG" && e.details.setting === c.setting,
    );
  }
});

test("fired hooks never overlap; close() gives up after one timeout plus the grace", async () => {
  const clock = new FakeClock();
  const logs = capture();
  let active = 0;
  let most = 0;
  const order: string[] = [];
  const slow: CommandRunner = {
    run: async (argv) => {
      active++;
      most = Math.max(most, active);
      order.push(argv[0]!);
      await clock.sleep(900);
      active--;
      return { code: 0, signal: null, stdout: "", stderr: "" };
    },
  };
  const hooks = new Hooks({ commands: { post_promote: ["/opt/p"], on_role_change: ["/opt/r"], on_demote: ["/opt/d"] }, timeoutMs: 1000 }, { runner: slow, clock, log: logs.log });
  hooks.fire("post_promote", CTX);
  hooks.fire("on_role_change", CTX);
  hooks.fire("on_demote", CTX);
  let closed = false;
  void hooks.close().then(() => (closed = true));
  await clock.advance(1000);
  assert.deepEqual(order, ["/opt/p", "/opt/r"], "the second starts only when the first is done");
  await clock.advance(999);
  assert.equal(closed, false);
  assert.equal(most, 1);
  await clock.advance(1);
  assert.equal(closed, true, "close() is bounded by timeout + 1s grace");
  assert.ok(
    logs.entries().some((e) => e.msg === "hooks still running at shutdown; not waiting for them"),
    'logs.entries().some((e) => e.msg === "hooks still running at shutdown; not waiting for them")',
  );
});
