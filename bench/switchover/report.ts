// The switchover benchmark's printed report (bench/switchover/run.ts).
import { statSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { CLI } from "../../test/lab/harness/index.js";
import { type Stats, quantile, table } from "../failover/lib.js";
import { type Breakdown, type KaResult, type ModeResult, type Options, TARGET_MS } from "./model.js";

export function distTime(): string {
  try {
    return statSync(join(CLI, "..", "..", "ha", "role.js")).mtime.toISOString();
  } catch {
    return "?";
  }
}

/** The mode's name in the report, with the trigger when it is not the CLI. */
const label = (m: ModeResult): string => (m.trigger === "api" ? `${m.mode} (API POST)` : m.mode);

const fs3 = (ms: number | undefined): string => (ms === undefined || !Number.isFinite(ms) ? "-" : (ms / 1000).toFixed(3));
const fms = (ms: number | undefined): string => (ms === undefined || !Number.isFinite(ms) ? "-" : String(Math.round(ms)));

export function report(modes: ModeResult[], ka: KaResult | undefined, opts: Options, wall: number): string {
  const out: string[] = [];
  const rows: string[][] = [["metric", "n", "median", "p95", "min", "max", "target", "ok"]];
  const verdict = (p: boolean | undefined) => (p === undefined ? "-" : p ? "yes" : "NO");
  for (const m of modes) {
    const s = m.gap;
    rows.push([
      `planned switchover gap, ${label(m)} (s)`,
      `${s?.n ?? 0}/${m.runs.length}`,
      fs3(s?.median),
      fs3(s?.p95),
      fs3(s?.min),
      fs3(s?.max),
      `med <= ${(TARGET_MS[m.mode] / 1000).toFixed(2)}`,
      verdict(s ? s.median <= TARGET_MS[m.mode] && s.n === m.runs.length && m.runs.length > 0 : false),
    ]);
  }
  if (ka) {
    const s = ka.gap;
    rows.push(["planned switchover gap, keepalived (s)", `${s?.n ?? 0}/${ka.runs.length}`, fs3(s?.median), fs3(s?.p95), fs3(s?.min), fs3(s?.max), "(reference)", "-"]);
  }
  const ref = (name: string, n: number, s: Stats | undefined) => rows.push([name, `${s?.n ?? 0}/${n}`, fs3(s?.median), fs3(s?.p95), fs3(s?.min), fs3(s?.max), "(reported)", "-"]);
  for (const m of modes) ref(`request -> first banner, ${label(m)} (s)`, m.runs.length, m.requestToBanner);
  if (ka) ref("SIGHUP -> first banner, keepalived (s)", ka.runs.length, ka.hupToBanner);
  for (const m of modes) {
    for (const [name, s] of [
      ['CLI "handover took"', m.cliHandover],
      ["history handover_ms", m.historyHandover],
    ] as const) {
      rows.push([`${name}, ${label(m)} (s)`, `${s?.n ?? 0}/${m.runs.length}`, fs3(s?.median), fs3(s?.p95), fs3(s?.min), fs3(s?.max), "(reported)", "-"]);
    }
  }
  out.push(table(rows));

  if (ka?.gap) {
    for (const m of modes) {
      if (!m.gap) continue;
      out.push(
        `${label(m)} vs keepalived: median ${(m.gap.median / 1000).toFixed(3)} s vs ${(ka.gap.median / 1000).toFixed(3)} s = ${(m.gap.median / ka.gap.median).toFixed(2)}x;` +
          ` p95 ${(m.gap.p95 / 1000).toFixed(3)} s vs ${(ka.gap.p95 / 1000).toFixed(3)} s = ${(m.gap.p95 / ka.gap.p95).toFixed(2)}x`,
      );
    }
  } else if (!ka && (!opts.only || opts.only.has("keepalived"))) out.push("keepalived peer: not run");

  // Where the time goes (medians over the successful runs).
  const steps: Array<[keyof Breakdown, string]> = [
    ["requestSeen", "old primary sees the request (decision logged)"],
    ["lastBannerBefore", "client: last banner before the gap"],
    ["removeStarted", "old primary: `ip -j addr show` done, `ip addr del` starts"],
    ["vipRemoved", "old primary: floating IP removed"],
    ["daemonStopped", "old primary: sshd stopped (cold)"],
    ["released", "old primary: released or handed over the leader key (txn done)"],
    ["keyDeleted", "etcd watch: leader key DELETE"],
    ["campaigning", "new primary: campaigning, or promoting a handed key (decision logged)"],
    ["won", "new primary: won the election (txn done), or taking over a handed key"],
    ["guardStarted", "new primary: fence guard process spawned"],
    ["keyPut", "etcd watch: leader key PUT"],
    ["daemonStarted", "new primary: sshd started (cold)"],
    ["addStarted", "new primary: `ip -j addr show` done, `ip addr add` starts"],
    ["vipAdded", "new primary: floating IP added"],
    ["acting", "new primary: acting as primary"],
    ["arpAnswer", "ARP observer: first answer from the new primary"],
    ["firstOkStarted", "client: the first successful attempt after the gap started"],
    ["firstBannerAfter", "client: first banner after the gap"],
  ];
  const bd: string[][] = [['where the time goes (ms after "stepping down", median)', ...modes.map((m) => m.mode)]];
  for (const [k, label] of steps) {
    const cells = modes.map((m) => {
      const v = m.runs
        .filter((r) => r.ok && r.breakdown)
        .map((r) => r.breakdown![k])
        .filter((x): x is number => x !== null);
      return v.length ? `${fms(quantile(v, 0.5))}${v.length < m.runs.filter((r) => r.ok).length ? ` (n=${v.length})` : ""}` : "-";
    });
    if (cells.some((x) => x !== "-")) bd.push([label, ...cells]);
  }
  const addTook = modes.map((m) => {
    const v = m.runs.map((r) => r.breakdown?.vipAddTook).filter((x): x is number => typeof x === "number");
    return v.length ? fms(quantile(v, 0.5)) : "-";
  });
  bd.push(['(`ip addr add` alone, the agent\'s "floating IP added" ms)', ...addTook]);
  if (modes.length) out.push("", table(bd));

  const obsRows: string[][] = [["ARP observer (20 ms)", "samples", ">=2 holders", "max holders", "target", "ok"]];
  for (const m of modes)
    if (m.observer) obsRows.push([`understudy ${label(m)}`, String(m.observer.samples), String(m.observer.twoHolder), String(m.observer.maxHolders), "0", verdict(m.observer.twoHolder === 0)]);
  if (ka?.observer) obsRows.push(["keepalived", String(ka.observer.samples), String(ka.observer.twoHolder), String(ka.observer.maxHolders), "(reference)", "-"]);
  if (obsRows.length > 1) out.push("", table(obsRows));

  out.push("");
  const all = modes.flatMap((m) => m.runs).filter((r) => r.ok);
  const resol = all.map((r) => r.proberResolutionMs).filter((x): x is number => x !== null);
  const cliWall = all.map((r) => r.cliWallMs).filter((x): x is number => x !== null);
  out.push(
    `measurement: bench/failover/prober.mjs with --slow-ms ${opts.slowMs} in the client namespace (TCP connect VIP:22 + "SSH-2.0-" line; 20 ms ticks, 200 ms per attempt,` +
      ` a new attempt on every tick once the newest in flight is older than ${opts.slowMs} ms, up to 10 in flight;` +
      ` steady-state resolution median ${resol.length ? Math.round(quantile(resol, 0.5)) : "?"} ms); gap = last banner before -> first banner after;` +
      (opts.trigger === "api"
        ? ` understudy: POST /switchover {to: NODE} from a resident client in the client namespace (bench/switchover/api-client.mjs; request round trip median ${cliWall.length ? Math.round(quantile(cliWall, 0.5)) : "?"} ms), targets rotate n1 -> n2 -> n3;`
        : ` understudy: \`understudy switchover --to NODE\` run in the client namespace (CLI wall time median ${cliWall.length ? Math.round(quantile(cliWall, 0.5)) : "?"} ms incl. node start-up and following), targets rotate n1 -> n2 -> n3;`) +
      ` harness defaults: ttl 2s, fence_margin 500ms, LAN-tuned etcd; warm = daemon.mode warm (sshd on every node)`,
  );
  if (ka) out.push(`keepalived: ${ka.version}; ${ka.method}; unicast VRRP, advert_int 1, track script on sshd, sshd on every node${ka.error ? `; ERROR ${ka.error}` : ""}`);
  for (const m of modes) {
    out.push(
      `${m.mode}: load average at start ${m.loadavg.start}, at end ${m.loadavg.end}; ${m.wallSeconds.toFixed(0)} s; agent build (dist/ha/role.js) ${m.build}${m.error ? `; ERROR ${m.error}` : ""}`,
    );
  }
  if (ka) out.push(`keepalived: load average at start ${ka.loadavg.start}, at end ${ka.loadavg.end}; ${ka.wallSeconds.toFixed(0)} s`);
  out.push(`runs per mode: ${opts.runs}; host: ${cpus().length} cores; total wall time ${wall.toFixed(0)} s`);
  return out.join("\n");
}
