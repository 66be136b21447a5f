#!/usr/bin/env node
/**
 * A resident REST client for the switchover benchmark's `--trigger api`: runs
 * INSIDE the lab's client namespace, started once before the runs, so a
 * switchover is requested the way an automation system calls the API (one
 * HTTP POST from a process already running) without a CLI's Node start-up on
 * the host the gap is measured on.
 *
 * Usage: api-client.mjs TOKEN_FILE. Reads one JSON object per stdin line,
 * {"url": "http://198.18.X.Y:PORT/switchover", "body": {...}}, POSTs the body
 * with the bearer token, and writes one JSON line per request to stdout:
 * {"status": 200, "body": "...", "ms": 12.3} or {"error": "..."}.
 * Bounded: each request times out after 10 s; exits on stdin EOF.
 * Traffic: only to the URLs given, which the caller must take from the lab.
 */
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { createInterface } from "node:readline";

const tokenFile = process.argv[2];
if (!tokenFile) {
  process.stderr.write("usage: api-client.mjs TOKEN_FILE\n");
  process.exit(2);
}
const token = readFileSync(tokenFile, "utf8").trim();
const reply = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

createInterface({ input: process.stdin })
  .on("line", (line) => {
    let url, body;
    try {
      ({ url, body } = JSON.parse(line));
      if (!/^http:\/\/198\.(18|19)\.\d+\.\d+:\d+\//.test(url)) throw new Error(`not a lab URL: ${url}`);
    } catch (e) {
      reply({ error: e.message });
      return;
    }
    const t = performance.now();
    const req = request(url, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => reply({ status: res.statusCode, body: text, ms: Math.round((performance.now() - t) * 10) / 10 }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout after 10 s")));
    req.on("error", (e) => reply({ error: e.message }));
    req.end(JSON.stringify(body));
  })
  .on("close", () => process.exit(0));
