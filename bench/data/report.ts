/** The data benchmark's records and its plain-text report. */
import { GiB, MiB, type TreeFacts, type TreeDiff, describeDiff } from "../sync/tree.js";
import { quantile, table } from "../failover/lib.js";
import type { LatencySummary } from "./uploads.js";
import type { RsyncPush, RssSeries } from "./initial.js";
import type { FaultRun } from "./faults.js";

export interface StreamRecord {
  label: string;
  /** Uploads per second asked for. */
  rate: number;
  settings: string;
  mode: string;
  handed: number;
  acked: number;
  achievedRate: number | null;
  putMs: LatencySummary | null;
  latency: LatencySummary | null;
  missing: number;
  beforeAck: number;
  pollMsMax: number;
  /** Copies first seen by the 250 ms safety-net scan, not by an inotify event (their time is late by up to 250 ms). */
  seenByScan?: number;
  verify?: { checked: number; wrong: number; absent: number; examples: string[] };
  peer?: string;
  /** Acknowledged -> on both standbys, every upload (ms, rounded; null = never within the drain). */
  latenciesMs: (number | null)[];
  load1: number;
  /** understudy: the leader key before and after the stream. */
  leaderBefore?: string;
  leaderAfter?: string;
  errors: string[];
  error?: string;
}

export interface Results {
  date: string;
  size: string;
  options: Record<string, unknown>;
  machine: { cores: number; memGiB: number; kernel: string; node: string; rsync: string; openssh: string; lsyncd: string | null; loadavgStart: string; loadavgEnd?: string };
  understudy: { used: boolean; why: string; commit?: string };
  phaseLoad: Record<string, number>;
  tree?: TreeFacts;
  streams: StreamRecord[];
  initial?: {
    rsyncRuns: (RsyncPush & { when: string })[];
    /** Reference: `rsync -a --fsync` to both standbys at once. */
    fsyncReference?: RsyncPush;
    rsyncMs: number | null;
    understudy?: {
      /** Both standbys acknowledged (the primary's "full pass done", barrier included), from the standby agents' start. */
      joinMs: number | null;
      perStandbyMs: Record<string, number | null>;
      fullPassMs: Record<string, number>;
      ackMs?: Record<string, number>;
      durability?: Record<string, string>;
      verify: Record<string, TreeDiff | string>;
      error?: string;
    };
    rss?: Record<string, RssSeries>;
  };
  rssDuringStream?: Record<string, RssSeries>;
  faults: FaultRun[];
  wallSeconds?: number;
  report?: string[];
}

const msf = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? "-" : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(0)} ms`);
const sec = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? "-" : `${(v / 1000).toFixed(1)} s`);
const xf = (a: number | null | undefined, b: number | null | undefined): string => (a && b ? `${(a / b).toFixed(2)}×` : "-");
const mib = (kb: number | undefined): string => (kb === undefined ? "-" : `${(kb / 1024).toFixed(0)} MiB`);

export function report(res: Results): string {
  const out: string[] = [];
  const o = res.options;
  if (res.streams.length) {
    const rates = [...new Set(res.streams.map((x) => x.rate))];
    for (const rate of rates) {
      const s = res.streams.filter((x) => x.rate === rate);
      out.push(
        `upload acknowledged -> present on both standbys (${rate} uploads/s of ${o.fileMib} MiB for ${o.seconds} s, ${s[0]!.mode === "sftp" ? `OpenSSH sftp through the VIP, ${o.sessions} sessions` : "written into the primary's root"}):`,
      );
      const rows: string[][] = [["", ...s.map((x) => x.label)]];
      rows.push(["uploads acknowledged / handed out", ...s.map((x) => `${x.acked}/${x.handed}`)]);
      rows.push(["achieved upload rate", ...s.map((x) => (x.achievedRate === null ? "-" : `${x.achievedRate.toFixed(1)}/s`))]);
      for (const k of ["p50", "p95", "p99", "max"] as const) rows.push([`latency ${k}`, ...s.map((x) => msf(x.latency?.[k]))]);
      rows.push(["not on both standbys within 60 s after the stream", ...s.map((x) => String(x.missing))]);
      rows.push(["copies seen by the 250 ms scan, not inotify", ...s.map((x) => (x.seenByScan === undefined ? "-" : String(x.seenByScan)))]);
      rows.push(["sftp put (handed -> acked) p50 / p99", ...s.map((x) => `${msf(x.putMs?.p50)} / ${msf(x.putMs?.p99)}`)]);
      rows.push(["byte-for-byte on both standbys", ...s.map((x) => (x.verify ? (x.verify.absent + x.verify.wrong > 0 ? `${x.verify.absent} absent, ${x.verify.wrong} differ` : "yes") : "-"))]);
      rows.push(["1-min load at start", ...s.map((x) => x.load1.toFixed(2))]);
      out.push(table(rows));
      for (const x of s) if (x.error || x.errors.length) out.push(`  ${x.label}: ${x.error ? `ERROR ${x.error}` : ""}${x.errors.length ? ` ${x.errors.join("; ")}` : ""}`);
      const u = s.find((x) => x.label === "understudy");
      if (rate === 50)
        out.push(
          `  target p50 ≤ 200 ms, p99 ≤ 1 s at 50/s: ${u ? `${u.latency && u.latency.p50 <= 200 ? "p50 met" : "p50 NOT MET"}, ${u.latency && u.latency.p99 <= 1000 && u.missing === 0 ? "p99 met" : "p99 NOT MET"}` : "understudy not measured"}`,
        );
      out.push("");
    }
    const seen = new Set<string>();
    for (const x of res.streams) {
      if (seen.has(x.label)) continue;
      seen.add(x.label);
      out.push(`  ${x.label}: ${x.settings}${x.peer ? `; ${x.peer}` : ""}`);
    }
  }
  const I = res.initial;
  if (I) {
    const t = res.tree;
    out.push("");
    out.push(`initial sync of ${t ? `${t.files} files / ${(t.bytes / GiB).toFixed(2)} GiB` : "?"} (${res.size}) to two standbys:`);
    const rows: string[][] = [["", "time", "vs plain rsync -a ×2"]];
    rows.push([`plain rsync -a, both standbys in parallel (median of ${I.rsyncRuns.length})`, sec(I.rsyncMs), "1.00×"]);
    if (I.fsyncReference) rows.push(["(reference) plain rsync -a --fsync, both in parallel", sec(I.fsyncReference.ms), xf(I.fsyncReference.ms, I.rsyncMs)]);
    if (I.understudy) rows.push(["understudy: standby agents start -> both acknowledged", sec(I.understudy.joinMs), xf(I.understudy.joinMs, I.rsyncMs)]);
    out.push(table(rows));
    out.push(`  rsync runs: ${I.rsyncRuns.map((r) => `${r.when} ${sec(r.ms)} (${r.eachMs.map(sec).join(" / ")})${r.error ? ` ERROR ${r.error}` : ""}`).join("; ")}`);
    if (I.understudy) {
      out.push(
        `  understudy shipper's full pass, probe + rsync + barrier (n1's log): ${
          Object.entries(I.understudy.fullPassMs)
            .map(([k, v]) => `${k} ${sec(v)} (${I.understudy!.durability?.[k] ?? "?"})`)
            .join(", ") || "-"
        }`,
      );
      out.push(
        `  understudy per standby: ${Object.entries(I.understudy.perStandbyMs)
          .map(([k, v]) => `${k} ${sec(v)}`)
          .join(", ")}${I.understudy.error ? `; ERROR ${I.understudy.error}` : ""}`,
      );
      out.push(
        `  trees: ${Object.entries(I.understudy.verify)
          .map(([k, v]) => `${k} ${typeof v === "string" ? v : describeDiff(v)}`)
          .join("; ")}`,
      );
      out.push(`  target ≤ 1.5× plain rsync: ${I.understudy.joinMs && I.rsyncMs ? (I.understudy.joinMs / I.rsyncMs <= 1.5 ? "met" : "NOT MET") : "not measured"}`);
    } else out.push("  understudy: not measured (see the gap above)");
  }
  const rssRows = (title: string, r: Record<string, RssSeries> | undefined): void => {
    if (!r || !Object.keys(r).length) return;
    out.push("", title);
    const rows: string[][] = [["agent", "node process max RSS", "with children max", "largest child (max)", "samples"]];
    for (const [k, v] of Object.entries(r)) {
      const big = Object.entries(v.byComm).sort((a, b) => b[1] - a[1])[0];
      rows.push([k, mib(v.agentMaxKb), mib(v.treeMaxKb), big ? `${big[0]} ${mib(big[1])}` : "-", String(v.samples)]);
    }
    out.push(table(rows));
  };
  rssRows(`agent RSS during the initial sync (${res.size}):`, I?.rss);
  rssRows(`agent RSS during the upload stream (data roots hold the ${res.size} tree too):`, res.rssDuringStream);
  if (res.faults.length) {
    out.push("", `uploads missing at promotion (sftp stream at ${o.rate}/s through the VIP, fault on the primary after ${o.faultAfterS} s):`);
    const rows: string[][] = [
      ["fault", "runs", "missing (acked before fault) median / max", "missing (acked before promotion) median / max", "acked before fault (median)", "promotion after (median)"],
    ];
    const kinds = [...new Set(res.faults.map((f) => f.kind))];
    for (const k of kinds) {
      const runs = res.faults.filter((f) => f.kind === k && !f.error);
      const med = (v: number[]) => (v.length ? quantile(v, 0.5) : NaN);
      const mx = (v: number[]) => (v.length ? Math.max(...v) : NaN);
      const a = runs.map((r) => r.missingBeforeFault);
      const b = runs.map((r) => r.missingBeforePromotion);
      rows.push([
        k,
        `${runs.length}/${res.faults.filter((f) => f.kind === k).length}`,
        runs.length ? `${med(a)} / ${mx(a)}` : "-",
        runs.length ? `${med(b)} / ${mx(b)}` : "-",
        runs.length ? String(med(runs.map((r) => r.ackedBeforeFault))) : "-",
        runs.length ? sec(med(runs.map((r) => r.promotionMs ?? NaN))) : "-",
      ]);
    }
    out.push(table(rows));
    for (const f of res.faults.filter((x) => x.error)) out.push(`  ${f.kind} #${f.run}: ERROR ${f.error}`);
  }
  out.push("");
  out.push(`understudy: ${res.understudy.used ? `measured${res.understudy.commit ? ` (commit ${res.understudy.commit})` : ""}` : `NOT measured: ${res.understudy.why}`}`);
  out.push(
    `host: ${res.machine.cores} cores, ${res.machine.memGiB} GiB, Linux ${res.machine.kernel}, Node ${res.machine.node}, ${res.machine.rsync}, ${res.machine.openssh}, lsyncd ${res.machine.lsyncd ?? "-"}; load ${res.machine.loadavgStart} -> ${res.machine.loadavgEnd ?? "?"}; wall ${res.wallSeconds?.toFixed(0) ?? "?"} s; size ${res.size}`,
  );
  out.push(
    `1-min load when each phase started: ${Object.entries(res.phaseLoad)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(", ")}`,
  );
  if (res.tree) {
    const t = res.tree;
    out.push(
      `tree: ${t.files} files (${t.files - t.largeFiles} of ${(t.smallMin / 1024).toFixed(0)}-${(t.smallMax / 1024).toFixed(0)} KiB in ${t.dirs} dirs = ${(t.smallBytes / MiB).toFixed(0)} MiB, ${t.largeFiles} of ~${(t.largeBytes / Math.max(1, t.largeFiles) / MiB).toFixed(0)} MiB), random data, written in ${sec(t.generateMs)}`,
    );
  }
  return out.join("\n");
}
