// `owner: user:group` of a sync root, resolved once at agent start from the
// local account databases (a name may map to different ids on each node; that
// is exactly why a forced owner exists).
import { readFile } from "node:fs/promises";
import { UnderstudyError } from "../errors/catalogue.js";
import type { Owner } from "./apply.js";

export interface AccountFiles {
  readonly passwd: string;
  readonly group: string;
}

const SYSTEM_FILES: AccountFiles = { passwd: "/etc/passwd", group: "/etc/group" };

/** Resolve "user:group" (names or numbers). Throws US_E_SYNC_ROOT_INVALID for an unknown name. */
export async function resolveOwner(rootName: string, spec: string, files: AccountFiles = SYSTEM_FILES): Promise<Owner> {
  const [user, group] = spec.split(":") as [string, string];
  const bad = (problem: string) => new UnderstudyError("US_E_SYNC_ROOT_INVALID", { name: rootName, problem });
  const lookup = async (name: string, file: string, what: string): Promise<number> => {
    if (/^\d+$/.test(name)) return Number(name);
    const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
      throw bad(`owner ${spec}: cannot read ${file} to look up ${what} ${name} (${e.code ?? e.message})`);
    });
    for (const line of text.split("\n")) {
      const fields = line.split(":");
      if (fields[0] === name && fields[2] !== undefined && /^\d+$/.test(fields[2])) return Number(fields[2]);
    }
    throw bad(`owner ${spec}: no ${what} named ${name} in ${file}`);
  };
  return { uid: await lookup(user, files.passwd, "user"), gid: await lookup(group, files.group, "group") };
}
