// The configuration the HA loop tests share: one node, etcd and daemon as fakes see them.
import { parseConfigText } from "../../../src/config/load.js";

export function configFor(name: string, priority = 100, extra = "", mode: "cold" | "warm" = "cold") {
  return parseConfigText(
    `cluster: t
node: { name: ${name}, address: 198.18.0.1, priority: ${priority} }
etcd: { endpoints: ["http://198.18.0.2:2379"] }
election: { ttl: 5s, fence_margin: 1s, ranking_delay: 500ms }
daemon: { backend: process, mode: ${mode}, command: [/bin/true] }
${extra}`,
    "test.yaml",
  );
}
