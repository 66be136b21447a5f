// Data replication through the REST API (docs/data.md): GET /data answers the
// engine's DataStatus; POST /data/notify journals uploads that just closed
// (`understudy data notify PATH...`, called by an upload hook) so they ship at
// once instead of after the watcher's event. Both are 404 on a node without a
// data section, so a hook pointed at the wrong node learns why.
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { refuse, type ApiDeps } from "./server.js";
import { issuePath } from "./validate.js";

/** Paths in one request: a hook sends one; `data notify` splits longer lists into requests of at most this many. */
export const NOTIFY_MAX_PATHS = 1000;
/** Bytes of one POST /data/notify body (1000 paths of ~60 bytes); more is 413 before anything is parsed. */
export const NOTIFY_BODY_LIMIT = 64 * 1024;
/** Linux PATH_MAX. */
const PATH_MAX = 4096;

const notifyPath = z
  .string()
  .min(1, "must not be empty")
  .max(PATH_MAX, `must be at most ${PATH_MAX} characters`)
  .refine((p) => p.startsWith("/"), "must be an absolute path")
  .refine((p) => !p.includes("\0"), "must not contain a NUL byte")
  .refine((p) => !p.split("/").includes(".."), "must not contain '..'");

export const notifyBody = z
  .object({
    paths: z.array(notifyPath).min(1, "must list at least one path").max(NOTIFY_MAX_PATHS, `must list at most ${NOTIFY_MAX_PATHS} paths (send several requests)`),
  })
  .strict();

/** "paths[2]: must be an absolute path" from the first zod issue. */
export function bodyProblem(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
  const at = issuePath(issue.path);
  if (keys.length > 0) return `${at ? `${at}.` : ""}${keys[0]}: unknown field (the body is {"paths": ["/abs/path", ...]})`;
  if (issue.path.length === 0) return `body: must be a JSON object {"paths": ["/abs/path", ...]}`;
  return `${at}: ${issue.message}`;
}

export interface NotifyAnswer {
  readonly node: string;
  readonly role: "primary" | "standby" | "none";
  readonly accepted: number;
  readonly ignored: readonly string[];
}

export function registerDataRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const noData = (reply: Parameters<typeof refuse>[0]) => refuse(reply, 404, "US_E_API_PRECONDITION", "data replication is not configured on this node (no data section)");

  app.get("/data", async (_req, reply) => (deps.data ? { node: deps.view().node, ...deps.data.status() } : noData(reply)));

  // Schema-less for fastify: zod checks the body so the answer names the field (paths[3]) and the rule.
  app.post<{ Body: unknown }>("/data/notify", { bodyLimit: NOTIFY_BODY_LIMIT }, async (req, reply) => {
    if (!deps.data) return noData(reply);
    const parsed = notifyBody.safeParse(req.body);
    if (!parsed.success) return refuse(reply, 400, "US_E_API_BAD_REQUEST", bodyProblem(parsed.error));
    const r = deps.data.notify(parsed.data.paths);
    const answer: NotifyAnswer = { node: deps.view().node, role: r.role, accepted: r.accepted, ignored: r.ignored };
    if (r.role !== "primary") {
      // Only the primary ships; a standby's files arrive from it. 409 names the role so a hook's log says why.
      return reply.code(409).send({
        error: "US_E_API_PRECONDITION",
        message: `this node is ${r.role === "standby" ? "a standby" : "not the primary"}: only the primary ships data, nothing was journaled`,
        ...answer,
      });
    }
    if (r.ignored.length > 0) deps.log.debug({ ignored: r.ignored.length, first: r.ignored[0] }, "data notify: paths outside every data root");
    return reply.code(202).send(answer);
  });
}
