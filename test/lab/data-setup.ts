/**
 * What every data lab test starts from (issue 14): a config sync root `app`
 * (the data transport rides on the sync key and the sync sshd) and one data
 * root `uploads` per node, with the test's own lines under `data:`.
 */
import { join } from "node:path";
import { authorizedKeysLine } from "../../src/sync/rsyncd.js";
import type { ClusterOptions, LabNode } from "./harness/index.js";

/** A node's data root (the upload directory partners write into). */
export const dataDir = (n: LabNode): string => join(n.dir, "data");
/** A node's config sync root. */
export const appDir = (n: LabNode): string => join(n.dir, "app");

export interface DataClusterOptions extends Omit<ClusterOptions, "sync" | "extraYaml"> {
  /** Where the node's data root is (default dataDir). */
  data?: (n: LabNode) => string;
  /** More lines under `data:` after the root (indent 2 spaces, each ending in a newline). */
  dataYaml?: string | ((n: LabNode) => string);
}

/** LabCluster options with the `app` sync root (retries at 1 s) and the `uploads` data root. */
export function dataCluster(opts: DataClusterOptions): ClusterOptions {
  const { data = dataDir, dataYaml = "", ...rest } = opts;
  return {
    ...rest,
    sync: {
      rootPaths: (n) => [appDir(n)],
      authorizedKeys: (publicKey, config) => authorizedKeysLine(publicKey, { config }),
      rootsYaml: (n) => `    - { name: app, path: ${appDir(n)} }`,
      extraYaml: "  retry_max: 1s",
    },
    extraYaml: (n) => `data:\n  roots:\n    - { name: uploads, path: ${data(n)} }\n${typeof dataYaml === "string" ? dataYaml : dataYaml(n)}`,
  };
}
