import { readFile, stat } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { ReloadingFile, type ReloadReporter } from "../platform/reloading-file.js";
import { UnderstudyError, describeError } from "../errors/catalogue.js";
import { readSecretFile } from "../platform/secret-file.js";

/**
 * Read the API bearer token. Refused when the file is not a private regular
 * file (platform/secret-file.ts: no symlink, FIFO or device, mode 0600, or
 * 0640 when root owns it) or holds fewer than 16 characters. Never logged.
 */
export async function readTokenFile(file: string): Promise<string> {
  const token = await checkTokenFile(file);
  if (typeof token !== "string") throw new UnderstudyError("US_E_API_TOKEN", { file, cause: token.problem });
  return token;
}

/** The token, or why the file is refused; `config check` reports the same sentence. */
export async function checkTokenFile(file: string): Promise<string | { problem: string }> {
  const r = await readSecretFile(file);
  if ("problem" in r) return r;
  const token = r.text.trim();
  if (token.length < 16) return { problem: "the token is empty or shorter than 16 characters" };
  // eslint-disable-next-line no-control-regex -- control characters are what this rejects
  if (/[\s\0-\x1f\x7f]/.test(token)) return { problem: "the token contains spaces or control characters" };
  return token;
}

/** Read the API's TLS key, certificate and optional client CA; the key must not be readable by others. */
export async function readApiTls(files: { key: string; cert: string; client_ca?: string | undefined }): Promise<{ key: Buffer; cert: Buffer; clientCa?: Buffer }> {
  const read = async (file: string, secret: boolean) => {
    try {
      const mode = secret ? (await stat(file)).mode & 0o777 : 0;
      if ((mode & 0o004) !== 0) throw new UnderstudyError("US_E_KEY_MODE", { mode: `0${mode.toString(8)}` });
      return await readFile(file);
    } catch (e) {
      throw new UnderstudyError("US_E_API_TOKEN", { file, cause: describeError(e) });
    }
  };
  const [key, cert, clientCa] = await Promise.all([read(files.key, true), read(files.cert, false), files.client_ca ? read(files.client_ca, false) : undefined]);
  return { key, cert, ...(clientCa ? { clientCa } : {}) };
}

/** api.token_file, read now (a bad file stops the start) and again when it changes; a bad new token keeps the old one. */
export async function reloadingToken(file: string, reporter?: ReloadReporter): Promise<ReloadingFile<string>> {
  const source = new ReloadingFile("api token_file", [file], () => readTokenFile(file), reporter);
  await source.init();
  return source;
}

export type ApiTlsFiles = { key: string; cert: string; client_ca?: string | undefined };

/** api.tls, read now and again when a file changes; a new pair is used only if the key matches the certificate. */
export async function reloadingApiTls(files: ApiTlsFiles, reporter?: ReloadReporter): Promise<ReloadingFile<{ key: Buffer; cert: Buffer; clientCa?: Buffer }>> {
  const paths = [files.key, files.cert, ...(files.client_ca ? [files.client_ca] : [])];
  const load = async () => {
    const t = await readApiTls(files);
    try {
      // Throws on a key that does not match the certificate, or a file that is not PEM.
      createSecureContext({ key: t.key, cert: t.cert, ...(t.clientCa ? { ca: t.clientCa } : {}) });
    } catch (e) {
      throw new UnderstudyError("US_E_API_TOKEN", { file: files.cert, cause: describeError(e) });
    }
    return t;
  };
  const source = new ReloadingFile("api tls", paths, load, reporter);
  await source.init();
  return source;
}
