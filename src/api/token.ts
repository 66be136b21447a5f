import { readFile, stat } from "node:fs/promises";
import { UnderstudyError, describeError } from "../errors/catalogue.js";

/**
 * Read the API bearer token. Refused when others may read the file: a token
 * anyone on the host can read is no secret. The token is never logged.
 */
export async function readTokenFile(file: string): Promise<string> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(file)).mode;
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new UnderstudyError("US_E_API_TOKEN", { file, cause: describeError(e) });
  }
  if ((mode & 0o004) !== 0) throw new UnderstudyError("US_E_API_TOKEN", { file, cause: `mode ${(mode & 0o777).toString(8)} lets others read it; use 0600` });
  const token = text.trim();
  if (token.length < 16) throw new UnderstudyError("US_E_API_TOKEN", { file, cause: "the token is empty or shorter than 16 characters" });
  return token;
}
