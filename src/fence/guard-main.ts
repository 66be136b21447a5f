// The fence guard process: started (detached) by the agent, it survives the
// agent's death. It listens on a unix socket in the state directory for
// heartbeats carrying the lease deadline; see core.ts for what it does.
// Kept free of the agent's heavier modules so it starts fast and stays small.
import { createServer, type Socket } from "node:net";
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { SystemClock } from "../platform/clock.js";
import { SpawnCommandRunner } from "../platform/command.js";
import { GuardCore, type GuardMessage, type GuardReply } from "./core.js";
import { LinuxWatchdog } from "./watchdog.js";
import { readJsonLines } from "./json-lines.js";

const { values } = parseArgs({ options: { socket: { type: "string" }, pidfile: { type: "string" } }, strict: true });
const socketPath = values.socket;
const pidfile = values.pidfile;
if (!socketPath || !pidfile) {
  process.stderr.write("usage: guard-main --socket PATH --pidfile PATH\n");
  process.exit(2);
}

const log = (line: string) => process.stderr.write(`${new Date(new SystemClock().wallMs()).toISOString()} understudy fence guard ${process.pid}: ${line}\n`);
const cleanup = () => {
  rmSync(socketPath, { force: true });
  rmSync(pidfile, { force: true });
};
const sockets = new Set<Socket>();
const runner = new SpawnCommandRunner();
const core = new GuardCore({
  clock: new SystemClock(),
  runner,
  log,
  kill: (pid, sig) => process.kill(pid, sig),
  writeFile: (file, content) => writeFileSync(file, content, { mode: 0o644 }),
  readPid: (file) => {
    try {
      const pid = Number(readFileSync(file, "utf8").trim().split(/\s+/)[0]);
      return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
    } catch {
      return undefined;
    }
  },
  alive: (pid) => {
    // A zombie has exited: its parent (the process backend's agent, perhaps frozen) just has not reaped it.
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false;
    } catch {
      return false;
    }
    return true;
  },
  watchdog: (path) => new LinuxWatchdog(path, runner),
  reply: (msg: GuardReply) => {
    const line = `${JSON.stringify(msg)}\n`;
    for (const s of sockets) if (!s.destroyed) s.write(line);
  },
  exit: (code) => {
    cleanup();
    log("exiting");
    process.exit(code);
  },
});

const server = createServer((sock: Socket) => {
  sockets.add(sock);
  core.connected();
  readJsonLines<GuardMessage>(sock, (msg) => core.handle(msg), (e) => log(`ignoring a malformed message: ${String(e)}`));
  sock.on("error", () => undefined);
  sock.on("close", () => {
    sockets.delete(sock);
    core.disconnected();
  });
});

rmSync(socketPath, { force: true });
server.listen(socketPath, () => {
  chmodSync(socketPath, 0o600);
  writeFileSync(pidfile, `${process.pid}\n`, { mode: 0o644 });
  log(`listening on ${socketPath}`);
});
// Stopped together with the agent (systemd stops the whole unit): fence now if armed.
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => core.shutdown());
