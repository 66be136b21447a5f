// Stand-ins for SFTPGo's listeners on 127.0.0.1, for test/unit/deploy/sftpgo-recipe.test.ts.
// SFTPGo is not packaged for Debian 12, so the recipe's probes are run against
// these: each answers the way SFTPGo's listener does (read from SFTPGo's source:
// internal/httpd/server.go and internal/telemetry/router.go serve GET /healthz
// as 200 "ok"; internal/webdavd/server.go answers 401 with WWW-Authenticate to
// a request without credentials; its FTP server greets with 220 and accepts
// AUTH TLS; its SFTP server speaks SSH 2), and can be made to fail the way a
// broken one would.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { TLSSocket } from "node:tls";
import ssh2 from "ssh2";
import { ed25519KeyPair } from "../../fakes/ssh-keys.js";
import { sshFingerprint } from "../../../src/probes/sftp.js";

export const HOST = "127.0.0.1";

export interface Pem {
  readonly key: string;
  readonly cert: string;
  readonly certFile: string;
  readonly keyFile: string;
}

function openssl(args: readonly string[]): void {
  const r = spawnSync("openssl", args, { encoding: "utf8" });
  assert.equal(r.status, 0, `openssl ${args.join(" ")}: ${r.stderr}`);
}

/** A test CA (EC P-256), valid for a year. */
export function makeCa(dir: string): Pem {
  const keyFile = join(dir, "ca.key");
  const certFile = join(dir, "ca.pem");
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "365",
    "-subj",
    "/CN=understudy test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  ]);
  return { key: readFileSync(keyFile, "utf8"), cert: readFileSync(certFile, "utf8"), certFile, keyFile };
}

/** A server certificate for `dnsName`, signed by `ca` (or self-signed without it), valid `days`. */
export function makeServerCert(dir: string, name: string, dnsName: string, ca: Pem | undefined, days = 365): Pem {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  if (!ca) {
    openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      String(days),
      "-subj",
      `/CN=${dnsName}`,
      "-addext",
      `subjectAltName=DNS:${dnsName}`,
    ]);
  } else {
    const csr = join(dir, `${name}.csr`);
    const ext = join(dir, `${name}.ext`);
    writeFileSync(ext, `subjectAltName=DNS:${dnsName}\nextendedKeyUsage=serverAuth\n`);
    openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", csr, "-subj", `/CN=${dnsName}`]);
    openssl(["x509", "-req", "-in", csr, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-CAcreateserial", "-out", certFile, "-days", String(days), "-extfile", ext]);
  }
  return { key: readFileSync(keyFile, "utf8"), cert: readFileSync(certFile, "utf8"), certFile, keyFile };
}

export interface Listening {
  readonly port: number;
  close(): Promise<void>;
}

async function listen(server: Server, sockets: Set<Socket>): Promise<Listening> {
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface HttpBehaviour {
  /** Status of GET /healthz (200 when healthy). */
  readonly healthz?: number;
  /** Status of anything else, WebDAV without credentials (401 when healthy). */
  readonly other?: number;
}

/** SFTPGo's HTTP listeners: /healthz (REST API, telemetry) and WebDAV's 401 challenge. */
function handler(b: HttpBehaviour) {
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.setHeader("Server", "SFTPGo/2.6.4");
    if (req.url === "/healthz") {
      res.statusCode = b.healthz ?? 200;
      return res.end(res.statusCode === 200 ? "ok" : "Service Unavailable");
    }
    res.statusCode = b.other ?? 401;
    if (res.statusCode === 401) res.setHeader("WWW-Authenticate", 'Basic realm="SFTPGo_2.6.4 WebDAV"');
    return res.end("Authentication error: no credentials provided");
  };
}

export function httpStandIn(b: HttpBehaviour = {}): Promise<Listening> {
  return listen(createHttpServer(handler(b)), new Set());
}

export function httpsStandIn(pem: Pem, b: HttpBehaviour = {}): Promise<Listening> {
  return listen(createHttpsServer({ key: pem.key, cert: pem.cert }, handler(b)), new Set());
}

/** An HTTPS stand-in whose certificate can be swapped in place, as SFTPGo's SIGHUP handler does (no restart, no new port). */
export async function reloadableHttpsStandIn(pem: Pem): Promise<Listening & { reload(next: Pem): void }> {
  const server = createHttpsServer({ key: pem.key, cert: pem.cert }, handler({}));
  const listening = await listen(server, new Set());
  return { ...listening, reload: (next) => server.setSecureContext({ key: next.key, cert: next.cert }) };
}

/** SFTPGo's FTP server with explicit TLS: greet, answer AUTH TLS with 234, then TLS with `pem`. */
export function ftpsStandIn(pem: Pem, greeting = "220 SFTPGo_2.6.4 ready\r\n"): Promise<Listening> {
  const server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.write(greeting);
    let buffer = "";
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      if (!buffer.includes("\r\n")) return;
      if (buffer !== "AUTH TLS\r\n") return void socket.end("500 unexpected\r\n");
      socket.off("data", onData);
      socket.write("234 AUTH TLS successful\r\n");
      const secure = new TLSSocket(socket, { isServer: true, key: pem.key, cert: pem.cert });
      secure.on("error", () => undefined);
      secure.resume();
    };
    socket.on("data", onData);
  });
  return listen(server, new Set());
}

/** A TCP listener that answers something other than SSH (a wrong port, another daemon). */
export function wrongBannerStandIn(text: string): Promise<Listening> {
  return listen(
    createServer((s) => {
      s.on("error", () => undefined);
      s.end(text);
    }),
    new Set(),
  );
}

export interface SftpStandIn extends Listening {
  readonly fingerprint: string;
}

/**
 * SFTPGo's SFTP server: banner SSH-2.0-SFTPGo_2.6.4, accepts `user` with
 * `clientPublic`, answers REALPATH. `providerDown` refuses every login, as
 * SFTPGo does when its data provider cannot be queried.
 */
export async function sftpStandIn(user: string, clientPublic: string, opts: { providerDown?: boolean } = {}): Promise<SftpStandIn> {
  const hostKey = ed25519KeyPair();
  const allowed = ssh2.utils.parseKey(clientPublic);
  if (allowed instanceof Error) throw allowed;
  const parsedHost = ssh2.utils.parseKey(hostKey.public);
  if (parsedHost instanceof Error) throw parsedHost;
  const clients = new Set<ssh2.Connection>();
  const server = new ssh2.Server({ hostKeys: [hostKey.private], ident: "SFTPGo_2.6.4" }, (client) => {
    clients.add(client);
    client.on("close", () => clients.delete(client));
    client.on("error", () => undefined);
    client.on("authentication", (ctx) => {
      if (opts.providerDown || ctx.username !== user || ctx.method !== "publickey") return ctx.reject(["publickey"]);
      if (ctx.key.algo !== allowed.type || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject(["publickey"]);
      if (!ctx.signature) return ctx.accept();
      if (ctx.blob && allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
      ctx.reject(["publickey"]);
    });
    client.on("ready", () => {
      client.on("session", (accept) => {
        accept().on("sftp", (acceptSftp) => {
          const sftp = acceptSftp();
          sftp.on("REALPATH", (reqid) => sftp.name(reqid, [{ filename: "/", longname: "/", attrs: {} as ssh2.Attributes }]));
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    fingerprint: sshFingerprint(parsedHost.getPublicSSH()),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of clients) c.end();
        server.close(() => resolve());
      }),
  };
}
