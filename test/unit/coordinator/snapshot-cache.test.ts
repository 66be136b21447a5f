// The watched view of the snapshot's keys: exact or nothing (docs/architecture.md,
// "A cycle woken by the watch"). Every case is a sequence of reads, events,
// watch connects/disconnects and own writes, with the view expected after it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clusterKeys } from "../../../src/coordinator/keys.js";
import { SnapshotCache, inSnapshot, type WatchedEvent } from "../../../src/coordinator/snapshot-cache.js";
import type { RawKv } from "../../../src/coordinator/snapshot-decode.js";

const K = clusterKeys("/u", "c1");
const kv = (key: string, value: string, mod: number): RawKv => ({ key, value, modRevision: mod });
const put = (key: string, value: string, mod: number): WatchedEvent => ({ type: "put", ...kv(key, value, mod) });
const del = (key: string, mod: number): WatchedEvent => ({ type: "delete", key, value: "", modRevision: mod });
const LEADER = K.leader;
const M1 = K.member("n1");
const HIST = `${K.historyPrefix}0001`;

function connected(): SnapshotCache {
  const c = new SnapshotCache(inSnapshot(K));
  c.watchConnected();
  return c;
}
const shown = (c: SnapshotCache) => {
  const v = c.view();
  return v && { revision: v.revision, kvs: Object.fromEntries(v.kvs.map((x) => [x.key, `${x.value}@${x.modRevision}`])) };
};

describe("SnapshotCache", () => {
  it("the snapshot's keys are those it reads: history/ and data/rejoin/ are not", () => {
    const is = inSnapshot(K);
    for (const key of [LEADER, M1, K.switchover, K.released, K.ban("n2"), K.pause, K.syncGeneration, K.dataProgress, K.failsafeMembers]) assert.ok(is(key), key);
    for (const key of [HIST, K.dataRejoin("n1"), `${K.leader}x`, `${K.base}other`, "/u/c2/leader"]) assert.ok(!is(key), key);
  });

  it("nothing before a read, nor from a read made while the watch was not connected", () => {
    const c = new SnapshotCache(inSnapshot(K));
    assert.equal(c.view(), null);
    c.readDone(c.readStarting(), [kv(LEADER, "n1", 5)], 5);
    assert.equal(c.view(), null, "no watch: events after the read would be missed");
    c.watchConnected();
    assert.equal(c.view(), null, "the read came before the watch");
    c.readDone(c.readStarting(), [kv(LEADER, "n1", 5)], 6);
    assert.deepEqual(shown(c), { revision: 6, kvs: { [LEADER]: "n1@5" } });
  });

  it("events after the read are applied; other keys only move the revision", () => {
    const c = connected();
    c.readDone(c.readStarting(), [kv(LEADER, "n1", 5), kv(M1, "a", 4)], 6);
    c.event(put(M1, "b", 7));
    c.event(put(HIST, "h", 8));
    c.event(del(LEADER, 9));
    assert.deepEqual(shown(c), { revision: 9, kvs: { [M1]: "b@7" } });
  });

  it("events the read raced are re-applied after it; those it includes change nothing", () => {
    const c = connected();
    const token = c.readStarting();
    c.event(put(M1, "old", 5)); // included in the read below (revision 6)
    c.event(del(LEADER, 7)); // newer than the read: arrived before its answer
    c.readDone(token, [kv(LEADER, "n1", 3), kv(M1, "newer", 6)], 6);
    assert.deepEqual(shown(c), { revision: 7, kvs: { [M1]: "newer@6" } });
  });

  it("a key deleted and re-created: the order of events decides, whatever the read saw", () => {
    const c = connected();
    const token = c.readStarting();
    c.event(del(LEADER, 5));
    c.event(put(LEADER, "n2", 6));
    c.readDone(token, [], 5); // read between the delete and the re-create
    assert.deepEqual(shown(c), { revision: 6, kvs: { [LEADER]: "n2@6" } });
  });

  it("a watch that lags behind the read: a put the read saw deleted does not come back", () => {
    const c = connected();
    c.readDone(c.readStarting(), [], 1);
    const token = c.readStarting();
    c.event(put(LEADER, "a", 2)); // the key existed at 2...
    c.readDone(token, [], 4); // ...and was deleted at 3: the read at 4 does not have it; the delete's event is not in yet
    assert.deepEqual(shown(c), { revision: 4, kvs: {} });
    c.event(del(LEADER, 3)); // the delete arrives late: nothing to do
    c.event(put(M1, "late", 4)); // a late event the read already holds
    assert.deepEqual(shown(c), { revision: 4, kvs: {} });
    c.event(put(M1, "new", 5));
    assert.deepEqual(shown(c), { revision: 5, kvs: { [M1]: "new@5" } });
  });

  it("a disconnect drops the view until a read made after the next connect", () => {
    const c = connected();
    c.readDone(c.readStarting(), [kv(LEADER, "n1", 5)], 5);
    c.watchDisconnected();
    assert.equal(c.view(), null);
    const spanning = c.readStarting();
    c.watchConnected();
    c.readDone(spanning, [kv(LEADER, "n1", 5)], 6);
    assert.equal(c.view(), null, "a read that spans a reconnect may miss what happened in between");
    c.readDone(c.readStarting(), [kv(LEADER, "n1", 5)], 7);
    assert.deepEqual(shown(c), { revision: 7, kvs: { [LEADER]: "n1@5" } });
  });

  it("read-your-writes: no view older than this agent's last write", () => {
    const c = connected();
    c.readDone(c.readStarting(), [], 5);
    c.wrote(8); // our campaign won at revision 8; its watch event is not in yet
    assert.equal(c.view(), null);
    c.event(put(LEADER, "me", 8));
    assert.deepEqual(shown(c), { revision: 8, kvs: { [LEADER]: "me@8" } });
    c.wrote(9); // a history put: its event moves the revision although the key is not kept
    assert.equal(c.view(), null);
    c.event(put(HIST, "h", 9));
    assert.equal(c.view()?.revision, 9);
  });

  it("a request whose outcome is unknown (failed, timed out): no view until a read started after it", () => {
    const c = connected();
    c.readDone(c.readStarting(), [kv(LEADER, "n1", 5)], 6);
    const inFlight = c.readStarting();
    c.outcomeUnknown(); // a campaign txn timed out: it may have committed at a revision never learnt
    assert.equal(c.view(), null);
    c.readDone(inFlight, [kv(LEADER, "n1", 5)], 6);
    assert.equal(c.view(), null, "a read started before the unknown write cannot tell");
    c.readDone(c.readStarting(), [kv(LEADER, "n2", 7)], 7);
    assert.deepEqual(shown(c), { revision: 7, kvs: { [LEADER]: "n2@7" } });
  });

  it("an older read that finishes after a newer one is ignored", () => {
    const c = connected();
    const older = c.readStarting();
    const newer = c.readStarting();
    c.event(put(M1, "x", 6));
    c.readDone(newer, [kv(M1, "x", 6)], 6);
    c.readDone(older, [], 5);
    assert.deepEqual(shown(c), { revision: 6, kvs: { [M1]: "x@6" } });
  });

  it("an overflow while a read is in flight: that read does not make the view valid", () => {
    const c = connected();
    c.readDone(c.readStarting(), [], 1);
    const token = c.readStarting();
    for (let r = 2; r < 10_003; r++) c.event(put(M1, String(r), r));
    c.event(put(M1, "after", 10_003));
    c.readDone(token, [kv(M1, "2", 2)], 2);
    assert.equal(c.view(), null);
  });

  it("too many events between two reads: no view until the next read", () => {
    const c = connected();
    c.readDone(c.readStarting(), [], 1);
    for (let r = 2; r < 10_003; r++) c.event(put(M1, String(r), r));
    assert.equal(c.view(), null);
    c.readDone(c.readStarting(), [kv(M1, "10002", 10_002)], 10_002);
    assert.equal(c.view()?.revision, 10_002);
  });
});
