/**
 * Remove lab leftovers.
 *   node --import tsx test/lab/harness/sweep-cli.ts --stale      # labs whose owner process is gone
 *   node --import tsx test/lab/harness/sweep-cli.ts PREFIX...    # a given run (e.g. usab12c)
 */
import { sweep, sweepStale } from "./cleanup.js";

const args = process.argv.slice(2);
if (args.length === 0) {
  process.stderr.write("usage: sweep-cli.ts --stale | PREFIX...\n");
  process.exit(2);
}
const results = args.includes("--stale") ? sweepStale() : args.map((p) => sweep(p));
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
