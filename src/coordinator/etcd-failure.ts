/** Why a call to etcd failed, in the catalogue's terms: the cause first, never a raw gRPC string alone. */
export interface EtcdFailure {
  readonly code: "US_E_ETCD_TLS" | "US_E_ETCD_AUTH" | "US_E_ETCD_UNREACHABLE";
  readonly cause: string;
}

const TLS_CAUSES: readonly [RegExp, string][] = [
  [
    /self[- ]signed certificate|unable to get local issuer|certificate verify failed|unable to verify the first certificate|CERTIFICATE_VERIFY_FAILED/i,
    "etcd's server certificate is not signed by the CA in etcd.tls.ca",
  ],
  [
    /Hostname\/IP does not match|altnames|ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate/i,
    "etcd's server certificate does not name this endpoint (set etcd.tls.server_name to a name it carries)",
  ],
  [/certificate has expired|CERT_HAS_EXPIRED|not yet valid/i, "a certificate has expired or is not yet valid (check both ends' dates)"],
  [
    /certificate required|alert.*bad certificate|tlsv1 alert|sslv3 alert|unknown ca|alert number 4[0-9]/i,
    "etcd refused this node's client certificate (missing, or not signed by the CA etcd trusts: etcd.tls.cert / key)",
  ],
  [/wrong version number|packet length too long|http_request|EPROTO/i, "the endpoint does not speak TLS (an http:// etcd behind an https:// URL?)"],
  [/handshake|SSL routines|ssl_|TLS|secure/i, "the TLS handshake with etcd failed"],
];
const AUTH_CAUSES: readonly [RegExp, string][] = [
  [/authentication failed|invalid user ID or password/i, "etcd refused the user or password (etcd.auth)"],
  [/permission denied/i, "the etcd user's role does not allow this key range (grant readwrite on <prefix>/<cluster>/)"],
  [/user name is empty|user name not found|invalid auth token|auth token is not provided|Unauthenticated|UNAUTHENTICATED/i, "etcd requires authentication (set etcd.auth)"],
];

/**
 * Sort a failure into TLS, auth or plain unreachability and name the likely
 * cause in words an operator can act on; the library's text follows it,
 * shortened, for the record. Pure, for tests.
 */
export function classifyEtcdFailure(e: unknown): EtcdFailure {
  const raw = `${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  const detail = raw.replace(/\s+/g, " ").slice(0, 300);
  for (const [re, cause] of AUTH_CAUSES) if (re.test(raw)) return { code: "US_E_ETCD_AUTH", cause: `${cause} (${detail})` };
  for (const [re, cause] of TLS_CAUSES) if (re.test(raw)) return { code: "US_E_ETCD_TLS", cause: `${cause} (${detail})` };
  return { code: "US_E_ETCD_UNREACHABLE", cause: detail };
}
