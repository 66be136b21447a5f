// A primary demoted while its watcher's first scan still runs (promoted and
// fenced again within moments: failsafe chaos, etcd member kill). The pass
// that started the watcher waited for a `ready` that chokidar never sends
// once closed, so that pass and every later one hung: the standby never
// pulled again. FakeWatchSource.neverReady stands in for that chokidar.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { makeTree } from "../../fakes/tree.js";
import { SSH, makeNode, newCase, primary, recordFor, standby, synced, waitFor, leader } from "./engine-harness.js";

test("demoted during the watcher's first scan: the pass ends and the standby pulls the next generation", async () => {
  const caseDir = await newCase();
  await makeTree(path.join(caseDir, "primary", "ssh"), SSH);
  const h = await makeNode(caseDir);
  h.watch.neverReady = true;
  await h.engine.start();
  h.engine.follow(primary("n2", 8));
  await waitFor("the watcher started", () => h.watch.starts === 1);
  h.engine.follow(standby(null, leader("n1", 9)));
  await waitFor("the watcher closed", () => h.watch.closed === 1);
  const rec = await recordFor(h, { generation: 5, source: "n1", term: 9 });
  h.engine.follow(standby(rec, leader("n1", 9)));
  await synced(h, 5);
  assert.equal(h.engine.generation(), 5);
  assert.equal(h.engine.status().role, "standby");
});
