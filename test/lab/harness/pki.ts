/**
 * A throw-away PKI for the lab's secure etcd: a CA, server certificates with
 * the names and addresses etcd answers on, and client certificates, made with
 * the openssl binary (argv, no shell). Keys are written 0600.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runOk } from "./exec.js";

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export class LabPki {
  readonly ca: CertFiles;
  private constructor(
    private readonly dir: string,
    private readonly name: string,
  ) {
    this.ca = { cert: join(dir, `${name}-ca.pem`), key: join(dir, `${name}-ca.key`) };
  }

  /** A new CA in `dir`; `name` prefixes every file, so two PKIs can share a directory. */
  static async create(dir: string, name = "lab"): Promise<LabPki> {
    const pki = new LabPki(dir, name);
    await runOk(
      [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        `/CN=understudy ${name} test CA`,
        "-keyout",
        pki.ca.key,
        "-out",
        pki.ca.cert,
      ],
      { timeoutMs: 20_000 },
    );
    chmodSync(pki.ca.key, 0o600);
    return pki;
  }

  /** A certificate signed by this CA: for a server, `sans` like ["IP:127.0.0.1", "DNS:etcd"]. */
  async issue(cn: string, opts: { sans?: readonly string[]; usage: "server" | "client" | "both" }): Promise<CertFiles> {
    const base = join(this.dir, `${this.name}-${cn.replace(/[^A-Za-z0-9.-]/g, "_")}`);
    const files = { cert: `${base}.pem`, key: `${base}.key` };
    const ext = `${base}.ext`;
    const eku = opts.usage === "server" ? "serverAuth" : opts.usage === "client" ? "clientAuth" : "serverAuth,clientAuth";
    writeFileSync(ext, [`extendedKeyUsage=${eku}`, ...(opts.sans?.length ? [`subjectAltName=${opts.sans.join(",")}`] : [])].join("\n") + "\n");
    await runOk(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${cn}`, "-keyout", files.key, "-out", `${base}.csr`], { timeoutMs: 20_000 });
    chmodSync(files.key, 0o600);
    await runOk(["openssl", "x509", "-req", "-in", `${base}.csr`, "-CA", this.ca.cert, "-CAkey", this.ca.key, "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", files.cert], {
      timeoutMs: 20_000,
    });
    return files;
  }
}
