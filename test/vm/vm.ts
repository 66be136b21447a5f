/**
 * Real-kernel tests of the Linux watchdog code: boots a Debian 12 kernel under
 * qemu with the softdog driver, and runs a Node script inside the VM against
 * its real /dev/watchdog. This machine's own kernel has no watchdog driver and
 * cannot load modules, hence the VM.
 *
 * - The kernel comes from Debian's linux-image-6.1.0-N-amd64 package (the one
 *   linux-image-amd64 depends on), fetched lazily with `apt-get download` on
 *   first use and cached, reduced to vmlinuz, its config and the watchdog
 *   modules, in /var/cache/understudy-test/kernel/ (UNDERSTUDY_VM_CACHE).
 *   scripts/install-deps.sh installs qemu-system-x86 and busybox-static but
 *   not the kernel: the first run downloads it (about 70 MB, then ~10 MB kept).
 * - The initramfs (newc cpio, uncompressed: quicker than gzip for a ~110 MB
 *   image of which the node binary is most) holds busybox, node, wdctl, the
 *   native executables asked for (the fence guard) and their shared
 *   libraries, the dist/ modules the scripts import, the modules
 *   and an /init that loads softdog with the boot's parameters, runs
 *   /app/case.mjs, prints `@@vm poweroff` and powers off. A watchdog reset
 *   makes qemu exit (-no-reboot) before that marker.
 * - Console lines are timestamped on the host as they arrive. Lines starting
 *   with `@@` are markers; scripts put CLOCK_MONOTONIC times from inside the
 *   VM in them (see vmPrelude), which are exact where host times include
 *   console latency.
 *
 * Everything runs with argument arrays (no shell on the host), bounded by
 * timeouts; temporary files are removed by VmImage.cleanup().
 */
import { spawn } from "node:child_process";
import { copyFileSync, appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { basename, dirname, join, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { killGroup, run } from "../lab/harness/exec.js";
import { parentDirs, writeCpio, type CpioEntry } from "./cpio.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const QEMU = "/usr/bin/qemu-system-x86_64";
const BUSYBOX = "/bin/busybox";
const DEFAULT_CACHE = "/var/cache/understudy-test/kernel";

// ---------------------------------------------------------------- kernel

export interface KernelModule {
  readonly name: string;
  /** Absolute path of the cached .ko. */
  readonly file: string;
}

export interface Kernel {
  readonly package: string;
  readonly vmlinuz: string;
  /** Modules to insmod before softdog, in load order (softdog's dependencies). */
  readonly deps: readonly KernelModule[];
  /** softdog.ko, or null when CONFIG_SOFT_WATCHDOG=y (parameters then go on the command line). */
  readonly softdog: KernelModule | null;
}

interface Manifest {
  package: string;
  vmlinuz: string;
  deps: { name: string; file: string }[];
  softdog: { name: string; file: string } | null;
}

/** The .modinfo "depends=" of a module: comma-separated module names, maybe empty. */
export function moduleDepends(ko: Buffer): string[] {
  const key = Buffer.from("\0depends=");
  const at = ko.indexOf(key);
  if (at < 0) return [];
  const start = at + key.length;
  const end = ko.indexOf(0, start);
  return ko
    .subarray(start, end < 0 ? start : end)
    .toString("utf8")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function configValue(config: string, name: string): string | undefined {
  const m = new RegExp(`^${name}=(.*)$`, "m").exec(config);
  return m?.[1];
}

/** The package linux-image-amd64 points at, e.g. linux-image-6.1.0-56-amd64. */
async function kernelPackageName(): Promise<string | undefined> {
  const r = await run(["apt-cache", "depends", "linux-image-amd64"], { timeoutMs: 30_000 });
  const m = /Depends:\s*(linux-image-\S+-amd64)\b/.exec(r.stdout);
  return m?.[1];
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/**
 * The cached kernel, fetching and reducing the Debian package if needed.
 * Throws with a readable reason when it cannot be had (no apt list, no network).
 */
export async function obtainKernel(cacheDir = process.env.UNDERSTUDY_VM_CACHE ?? DEFAULT_CACHE): Promise<Kernel> {
  mkdirSync(cacheDir, { recursive: true });
  const load = (dir: string): Kernel | undefined => {
    const mf = join(dir, "manifest.json");
    if (!existsSync(mf)) return undefined;
    const m = JSON.parse(readFileSync(mf, "utf8")) as Manifest;
    const abs = (f: string) => join(dir, f);
    return {
      package: m.package,
      vmlinuz: abs(m.vmlinuz),
      deps: m.deps.map((d) => ({ name: d.name, file: abs(d.file) })),
      softdog: m.softdog ? { name: m.softdog.name, file: abs(m.softdog.file) } : null,
    };
  };
  const pkg = await kernelPackageName();
  if (pkg) {
    const have = load(join(cacheDir, pkg));
    if (have) return have;
  } else {
    // No apt list (apt-get update not run): any kernel cached before will do.
    for (const d of readdirSync(cacheDir).sort().reverse()) {
      const have = d.startsWith("linux-image-") ? load(join(cacheDir, d)) : undefined;
      if (have) return have;
    }
    throw new Error("apt-cache depends linux-image-amd64 found no kernel package (run apt-get update) and none is cached");
  }

  const work = mkdtempSync(join(cacheDir, ".fetch-"));
  try {
    chmodSync(work, 0o755);
    const dl = await run(["apt-get", "download", pkg], { cwd: work, timeoutMs: 300_000 });
    const deb = readdirSync(work).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} failed (exit ${dl.code}): ${dl.stderr.trim().slice(-500)}`);
    const x = join(work, "x");
    const ex = await run(["dpkg-deb", "-x", join(work, deb), x], { timeoutMs: 300_000 });
    if (ex.code !== 0) throw new Error(`dpkg-deb -x ${deb} failed: ${ex.stderr.trim().slice(-500)}`);
    const boot = join(x, "boot");
    const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
    const configName = readdirSync(boot).find((f) => f.startsWith("config-"));
    if (!vmlinuz || !configName) throw new Error(`${deb} has no /boot/vmlinuz-* or /boot/config-*`);
    const config = readFileSync(join(boot, configName), "utf8");
    const soft = configValue(config, "CONFIG_SOFT_WATCHDOG");
    if (soft !== "m" && soft !== "y") throw new Error(`${pkg}: CONFIG_SOFT_WATCHDOG is ${soft ?? "not set"}`);
    if (configValue(config, "CONFIG_WATCHDOG_SYSFS") !== "y") throw new Error(`${pkg}: CONFIG_WATCHDOG_SYSFS is off; LinuxWatchdog reads sysfs`);

    const out = join(work, "out");
    mkdirSync(join(out, "modules"), { recursive: true });
    copyFileSync(join(boot, vmlinuz), join(out, "vmlinuz"));
    copyFileSync(join(boot, configName), join(out, "config"));
    // Module name -> file; names treat - and _ alike.
    const norm = (n: string) => n.replace(/-/g, "_");
    const kos = new Map<string, string>();
    for (const f of walk(join(x, "lib", "modules"))) if (f.endsWith(".ko")) kos.set(norm(basename(f, ".ko")), f);
    const order: { name: string; file: string }[] = [];
    const seen = new Set<string>();
    const visit = (name: string): void => {
      const n = norm(name);
      if (seen.has(n)) return;
      seen.add(n);
      const src = kos.get(n);
      if (!src) throw new Error(`${pkg}: module ${name} not found (is it compressed? only .ko is handled)`);
      for (const d of moduleDepends(readFileSync(src))) visit(d);
      const file = `modules/${n}.ko`;
      copyFileSync(src, join(out, file));
      order.push({ name: n, file });
    };
    let softdog: Manifest["softdog"] = null;
    if (soft === "m") {
      visit("softdog");
      softdog = order.pop() ?? null;
    }
    const manifest: Manifest = { package: pkg, vmlinuz: "vmlinuz", deps: order, softdog };
    writeFileSync(join(out, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    const dest = join(cacheDir, pkg);
    rmSync(dest, { recursive: true, force: true });
    renameSync(out, dest);
    // Older kernels are not used again once a newer one is cached.
    for (const d of readdirSync(cacheDir)) if (d.startsWith("linux-image-") && d !== pkg) rmSync(join(cacheDir, d), { recursive: true, force: true });
    const k = load(dest);
    if (!k) throw new Error("kernel cache: manifest missing after extraction");
    return k;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- image

/** Shared libraries and the ELF interpreter a dynamic binary needs, per ldd. */
async function sharedLibs(binary: string): Promise<string[]> {
  const r = await run(["ldd", binary], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ldd ${binary} failed: ${r.stderr.trim()}`);
  const libs: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const arrow = /=>\s*(\/\S+)/.exec(line);
    const bare = /^\s*(\/\S+)\s+\(/.exec(line);
    const p = arrow?.[1] ?? bare?.[1];
    if (p) libs.push(p);
  }
  return libs;
}

/** The relative-import closure of the given dist/ modules (bare "node:" imports are built in; others refused). */
export function distClosure(distDir: string, entries: readonly string[]): string[] {
  const out = new Set<string>();
  const todo = entries.map((e) => resolve(distDir, e));
  while (todo.length) {
    const f = todo.pop()!;
    if (out.has(f)) continue;
    out.add(f);
    const src = readFileSync(f, "utf8");
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|^\s*import\s+["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec) continue;
      if (spec.startsWith("node:")) continue;
      if (!spec.startsWith(".")) throw new Error(`${relative(distDir, f)} imports the package ${spec}: not in the VM image`);
      todo.push(resolve(dirname(f), spec));
    }
  }
  return [...out].sort();
}

export interface VmImageOptions {
  readonly kernel: Kernel;
  /** dist/ to take the modules from (default: the repo's). */
  readonly distDir?: string;
  /** Entry modules, relative to distDir; their relative imports come along. */
  readonly distEntries: readonly string[];
  /** Native executables (e.g. the fence guard) at `dest` in the image, with the shared libraries ldd lists. */
  readonly binaries?: readonly { readonly src: string; readonly dest: string }[];
}

const INIT = `#!/bin/sh
# understudy test VM: set up, load the watchdog, run the case, power off.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
exec </dev/console >/dev/console 2>&1
. /etc/understudy-vm.conf
for m in $VM_MODULES; do
  insmod "$m" || echo "@@vm insmod-failed $m"
done
if [ -n "$VM_SOFTDOG" ]; then
  insmod "$VM_SOFTDOG" $VM_SOFTDOG_PARAMS || echo "@@vm insmod-failed $VM_SOFTDOG"
fi
echo "@@vm ready"
node /app/case.mjs
echo "@@vm script-exit $?"
echo "@@vm poweroff"
poweroff -f
sleep 10
`;

/** A base initramfs, built once and booted many times with different scripts. */
export class VmImage {
  private constructor(
    readonly kernel: Kernel,
    readonly dir: string,
    readonly base: string,
    readonly bytes: number,
  ) {}

  static async build(opts: VmImageOptions): Promise<VmImage> {
    const distDir = opts.distDir ?? join(REPO_ROOT, "dist");
    const dir = mkdtempSync(join(tmpdir(), "understudy-vm-"));
    try {
      const files = new Map<string, { src: string; mode: number }>();
      const add = (dest: string, src: string, mode = 0o755) => files.set(dest, { src, mode });
      add("/bin/busybox", BUSYBOX);
      const node = process.execPath;
      add("/usr/bin/node", node);
      add("/usr/bin/wdctl", "/usr/bin/wdctl");
      for (const b of opts.binaries ?? []) add(b.dest, b.src);
      for (const bin of [node, "/usr/bin/wdctl", ...(opts.binaries ?? []).map((b) => b.src)]) for (const lib of await sharedLibs(bin)) add(lib, lib);
      for (const m of opts.kernel.deps) add(`/lib/modules/understudy/${m.name}.ko`, m.file, 0o644);
      if (opts.kernel.softdog) add("/lib/modules/understudy/softdog.ko", opts.kernel.softdog.file, 0o644);
      for (const f of distClosure(distDir, opts.distEntries)) add(posix.join("/app/dist", relative(distDir, f).split("\\").join("/")), f, 0o644);

      const dirs = new Set<string>();
      const entries: CpioEntry[] = [];
      for (const d of ["dev", "proc", "sys", "tmp", "run", "root", "etc", "bin", "sbin", "usr", "usr/bin", "usr/sbin", "app"]) {
        dirs.add(d);
        entries.push({ type: "dir", path: d });
      }
      entries.push({ type: "chardev", path: "dev/console", major: 5, minor: 1 });
      entries.push({ type: "symlink", path: "bin/sh", target: "busybox" });
      entries.push({ type: "file", path: "init", data: Buffer.from(INIT), mode: 0o755 });
      entries.push({ type: "file", path: "app/package.json", data: Buffer.from('{ "type": "module" }\n') });
      entries.push({ type: "file", path: "etc/passwd", data: Buffer.from("root:x:0:0:root:/root:/bin/sh\n") });
      const dests = [...files.keys()].sort();
      entries.push(...parentDirs(dests, dirs));
      function* all(): Generator<CpioEntry> {
        yield* entries;
        for (const d of dests) {
          const f = files.get(d)!;
          yield { type: "file", path: d, data: readFileSync(f.src), mode: f.mode };
        }
      }
      const base = join(dir, "base.cpio");
      const bytes = writeCpio(base, all());
      return new VmImage(opts.kernel, dir, base, bytes);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Boot once: softdog loaded with `softdogParams`, `script` (an ES module) run as /app/case.mjs. */
  async boot(opts: BootOptions): Promise<VmRun> {
    const id = `boot-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
    const initrd = join(this.dir, `${id}.cpio`);
    const extra = join(this.dir, `${id}-case.cpio`);
    const params = opts.softdogParams ?? "";
    if (!/^[\w=., -]*$/.test(params)) throw new Error(`softdogParams: unexpected characters in ${JSON.stringify(params)}`);
    const conf = [
      `VM_MODULES="${this.kernel.deps.map((m) => `/lib/modules/understudy/${m.name}.ko`).join(" ")}"`,
      `VM_SOFTDOG="${this.kernel.softdog ? "/lib/modules/understudy/softdog.ko" : ""}"`,
      `VM_SOFTDOG_PARAMS="${params}"`,
      "",
    ].join("\n");
    writeCpio(extra, [
      { type: "file", path: "app/case.mjs", data: Buffer.from(opts.script), mode: 0o644 },
      { type: "file", path: "etc/understudy-vm.conf", data: Buffer.from(conf), mode: 0o644 },
    ]);
    copyFileSync(this.base, initrd);
    appendFileSync(initrd, readFileSync(extra));
    // Built-in softdog takes its parameters on the command line.
    const cmdParams = this.kernel.softdog
      ? []
      : params
          .split(/\s+/)
          .filter(Boolean)
          .map((p) => `softdog.${p}`);
    const append = ["console=ttyS0", "quiet", "panic=-1", ...cmdParams].join(" ");
    try {
      return await bootQemu({ kernel: this.kernel.vmlinuz, initrd, append, timeoutMs: opts.timeoutMs, memoryMb: opts.memoryMb ?? 512 });
    } finally {
      rmSync(initrd, { force: true });
      rmSync(extra, { force: true });
    }
  }
}

export interface BootOptions {
  readonly script: string;
  /** softdog module parameters, e.g. "soft_margin=60 nowayout=0". */
  readonly softdogParams?: string;
  /** Hard limit for the whole boot; qemu is killed after it. */
  readonly timeoutMs: number;
  readonly memoryMb?: number;
}

// ---------------------------------------------------------------- qemu

export interface ConsoleLine {
  /** Host ms since qemu was spawned, when the line's newline arrived. */
  readonly atMs: number;
  readonly text: string;
}

export interface Marker extends ConsoleLine {
  readonly name: string;
  /** The rest of the line after the name. */
  readonly rest: string;
  /** `t=<ms>` from the line: CLOCK_MONOTONIC inside the VM, when present. */
  readonly vmMs: number | undefined;
  /** The JSON object at the end of the line, when present. */
  readonly data: Record<string, unknown> | undefined;
}

export interface VmRun {
  readonly accel: "kvm" | "tcg";
  readonly lines: readonly ConsoleLine[];
  readonly markers: readonly Marker[];
  /** Host ms since spawn when qemu exited (or was killed). */
  readonly exitedAtMs: number;
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly stderr: string;
  /** The script finished and /init powered off. */
  readonly poweredOff: boolean;
  /** qemu exited by itself without the poweroff marker: the guest reset (the watchdog, with -no-reboot). */
  readonly reset: boolean;
  /** The kernel said softdog fired ("softdog: Initiating system reboot"). */
  readonly softdogFired: boolean;
  marker(name: string): Marker | undefined;
  /** The whole console, for assertion messages. */
  transcript(): string;
}

function parseMarker(l: ConsoleLine): Marker | undefined {
  const m = /^@@(\S+)\s*(.*)$/.exec(l.text);
  if (!m) return undefined;
  const rest = m[2] ?? "";
  const t = /(?:^|\s)t=(-?\d+(?:\.\d+)?)/.exec(rest);
  const j = rest.indexOf("{");
  let data: Record<string, unknown> | undefined;
  if (j >= 0) {
    try {
      data = JSON.parse(rest.slice(j)) as Record<string, unknown>;
    } catch {
      data = undefined;
    }
  }
  return { ...l, name: m[1]!, rest, vmMs: t ? Number(t[1]) : undefined, data };
}

type Accel = { readonly accel: "kvm" | "tcg"; readonly args: readonly string[] };

/**
 * KVM with the host's CPU when it works; nested KVM may refuse some of the
 * host's MSRs ("failed to set MSR 0x10a", IA32_ARCH_CAPABILITIES), hence the
 * variants; TCG last. The first that boots is kept for the process.
 */
const ACCELS: readonly Accel[] = [
  { accel: "kvm", args: ["-enable-kvm", "-cpu", "host"] },
  { accel: "kvm", args: ["-enable-kvm", "-cpu", "host,-arch-capabilities"] },
  { accel: "kvm", args: ["-enable-kvm", "-cpu", "kvm64"] },
  { accel: "tcg", args: ["-accel", "tcg", "-cpu", "max"] },
];
let chosen: Accel | undefined;

/** How qemu runs here ("unknown" before the first boot). */
export function accelInUse(): string {
  return chosen ? chosen.args.join(" ") : "unknown";
}

/**
 * The first accelerator whose guest prints its kernel banner within 5 s
 * (a broken nested KVM can also hang silently). UNDERSTUDY_VM_ACCEL=tcg|kvm
 * forces the choice. Remembered for the process, and in the kernel cache per
 * host kernel release so later runs do not probe again.
 */
async function chooseAccel(kernel: string): Promise<Accel> {
  if (chosen) return chosen;
  const forced = process.env.UNDERSTUDY_VM_ACCEL;
  if (forced === "tcg" || forced === "kvm") return (chosen = ACCELS.find((a) => a.accel === forced)!);
  const memo = join(dirname(kernel), `accel-${release()}.json`);
  try {
    const args = JSON.parse(readFileSync(memo, "utf8")) as string[];
    const a = ACCELS.find((x) => x.args.join(" ") === args.join(" "));
    if (a) return (chosen = a);
  } catch {
    // not probed yet
  }
  for (const a of ACCELS) {
    if (a.accel === "kvm" && !existsSync("/dev/kvm")) continue;
    if (a.accel === "tcg") {
      chosen = a;
      break;
    }
    const r = await spawnQemu({ kernel, append: "console=ttyS0 panic=-1", timeoutMs: 5000, memoryMb: 256, accel: a, stopOn: /Linux version/ });
    if (r.lines.some((l) => /Linux version/.test(l.text))) {
      chosen = a;
      break;
    }
  }
  try {
    writeFileSync(memo, JSON.stringify(chosen!.args));
  } catch {
    // read-only cache: probe again next time
  }
  return chosen!;
}

async function bootQemu(o: { kernel: string; initrd: string; append: string; timeoutMs: number; memoryMb: number }): Promise<VmRun> {
  const a = await chooseAccel(o.kernel);
  // TCG is several times slower: give the boot more time.
  return spawnQemu({ ...o, accel: a, timeoutMs: a.accel === "tcg" ? o.timeoutMs * 3 : o.timeoutMs });
}

function spawnQemu(o: { kernel: string; initrd?: string; append: string; timeoutMs: number; memoryMb: number; accel: Accel; stopOn?: RegExp }): Promise<VmRun> {
  const args = [
    ...o.accel.args,
    "-smp",
    "1",
    "-m",
    String(o.memoryMb),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    "stdio",
    "-no-reboot",
    "-kernel",
    o.kernel,
    ...(o.initrd ? ["-initrd", o.initrd] : []),
    "-append",
    o.append,
  ];
  const started = performance.now();
  return new Promise((resolvePromise) => {
    const lines: ConsoleLine[] = [];
    let partial = "";
    let stderr = "";
    let timedOut = false;
    const child = spawn(QEMU, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, o.timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      const at = performance.now() - started;
      partial += d;
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const text = partial.slice(0, nl).replace(/\r/g, "");
        partial = partial.slice(nl + 1);
        if (lines.length < 100_000) lines.push({ atMs: at, text });
        if (o.stopOn?.test(text)) killGroup(child.pid);
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < 1_000_000) stderr += d;
    });
    const finish = (code: number | null) => {
      clearTimeout(timer);
      const exitedAtMs = performance.now() - started;
      if (partial) lines.push({ atMs: exitedAtMs, text: partial.replace(/\r/g, "") });
      const markers = lines.map(parseMarker).filter((m): m is Marker => m !== undefined);
      const poweredOff = markers.some((m) => m.name === "vm" && m.rest.startsWith("poweroff"));
      const ran = markers.some((m) => m.name === "vm" && m.rest.startsWith("ready"));
      resolvePromise({
        accel: o.accel.accel,
        lines,
        markers,
        exitedAtMs,
        code,
        timedOut,
        stderr,
        poweredOff,
        reset: ran && !poweredOff && !timedOut && code === 0,
        softdogFired: lines.some((l) => /softdog: Initiating system reboot/.test(l.text)),
        marker: (name: string) => markers.find((m) => m.name === name),
        transcript: () => lines.map((l) => `${(l.atMs / 1000).toFixed(3).padStart(8)} ${l.text}`).join("\n"),
      });
    };
    child.on("error", (e) => {
      stderr += `spawn error: ${e.message}`;
      finish(null);
    });
    child.on("close", (code) => finish(code));
  });
}

// ---------------------------------------------------------------- scripts

/**
 * Helpers for case scripts (prepend to the script): `mono()` is
 * CLOCK_MONOTONIC in ms, as SystemClock.systemMonotonicMs(); `mark(name, data?)`
 * prints a marker with `t=`; `sleep(ms)`; `startTicks(ms)` prints `@@tick t=...`
 * on a timer (in this process) so the last tick bounds a reset.
 */
export const vmPrelude = `
import { readFileSync as __rf } from "node:fs";
const mono = () => Number(process.hrtime.bigint() / 1000n) / 1000;
const mark = (name, data) => process.stdout.write("@@" + name + " t=" + mono().toFixed(1) + (data === undefined ? "" : " " + JSON.stringify(data)) + "\\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sysfs = (attr) => { try { return __rf("/sys/class/watchdog/watchdog0/" + attr, "utf8").trim(); } catch (e) { return "ERR " + e.code; } };
let __tick;
const startTicks = (ms = 100) => { __tick ??= setInterval(() => mark("tick"), ms); };
const stopTicks = () => { clearInterval(__tick); __tick = undefined; };
process.on("uncaughtException", (e) => { mark("error", { message: String(e && e.stack || e) }); process.exit(70); });
process.on("unhandledRejection", (e) => { mark("error", { message: String(e && e.stack || e) }); process.exit(70); });
`;
