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

/** Read the API's TLS key, certificate and optional client CA; the key must not be readable by others. */
export async function readApiTls(files: { key: string; cert: string; client_ca?: string | undefined }): Promise<{ key: Buffer; cert: Buffer; clientCa?: Buffer }> {
  const read = async (file: string, secret: boolean) => {
    try {
      if (secret && ((await stat(file)).mode & 0o004) !== 0) {
        throw new Error(`mode lets others read the private key; use 0600`);
      }
      return await readFile(file);
    } catch (e) {
      throw new UnderstudyError("US_E_API_TOKEN", { file, cause: describeError(e) });
    }
  };
  const [key, cert, clientCa] = await Promise.all([read(files.key, true), read(files.cert, false), files.client_ca ? read(files.client_ca, false) : undefined]);
  return { key, cert, ...(clientCa ? { clientCa } : {}) };
}
