// An explicit-FTPS listener (RFC 4217 up to the TLS handshake: 220, AUTH TLS,
// 234, TLS) for the lab, standing in for ProFTPD's mod_tls: it reads its
// certificate and key from one PEM file at every connection, as a daemon does
// after the reload that follows a renewal. No login, no data: the ftps probe
// checks what every FTPS client needs first.
//   node ftps-standin.mjs HOST PORT PEMFILE
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { TLSSocket, createSecureContext } from "node:tls";

const [host, port, pemFile] = process.argv.slice(2);
const server = createServer((sock) => {
  sock.on("error", () => undefined);
  sock.setTimeout(10_000, () => sock.destroy());
  sock.write("220 understudy lab FTPS stand-in\r\n");
  let line = "";
  const onData = (chunk) => {
    line += chunk.toString("latin1");
    if (!line.includes("\n")) return;
    sock.off("data", onData);
    if (!/^AUTH TLS/i.test(line)) {
      sock.end("502 only AUTH TLS here\r\n");
      return;
    }
    sock.write("234 AUTH TLS ok\r\n");
    let context;
    try {
      const pem = readFileSync(pemFile, "utf8");
      context = createSecureContext({ cert: pem, key: pem });
    } catch (e) {
      console.error(`cannot load ${pemFile}: ${e.message}`);
      sock.destroy();
      return;
    }
    const secure = new TLSSocket(sock, { isServer: true, secureContext: context });
    secure.on("error", () => sock.destroy());
    secure.setTimeout(10_000, () => secure.destroy());
  };
  sock.on("data", onData);
});
server.listen(Number(port), host, () => console.log(`listening on ${host}:${port}, pair from ${pemFile}`));
