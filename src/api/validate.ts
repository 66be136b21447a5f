// Request validation with zod (already the config's validator) instead of
// fastify's default ajv: route schemas are zod schemas, checked by
// safeParse. Fastify loads ajv, ajv-formats and fast-json-stringify only
// for its default compilers; without them an agent starts ~0.12 s of CPU
// sooner and holds ~2 MB less heap (docs/benchmarks.md, idle agent). A
// failed check is a 400 US_E_API_BAD_REQUEST naming the field and the rule.
import type { FastifySchemaCompiler, FastifyServerOptions } from "fastify";
import { z } from "zod";
import { UnderstudyError } from "../errors/catalogue.js";

/** A node name as the config accepts it. */
export const NODE_NAME = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a node name (a-z, 0-9 and '-', 1-63 characters, no '-' at either end)");
const REASON = z.string().max(500, "must be at most 500 characters");
const WHO = z.string().max(100, "must be at most 100 characters");

/**
 * A mutation's body: `reason` and `requested_by` always allowed, the given
 * fields besides, nothing else. A body made only of optional fields may be
 * left out (`curl -X POST .../resume`): fastify hands a missing body over as null.
 */
export function mutationBody<T extends z.ZodRawShape>(fields: T) {
  return z.object({ reason: REASON.optional(), requested_by: WHO.optional(), ...fields }).strict();
}

/** GET /history's query: `limit`, 1-1000 written in digits (query strings are text: no coercion). */
export const HISTORY_QUERY = z
  .object({
    limit: z
      .string()
      .regex(/^([1-9][0-9]{0,2}|1000)$/, "must be a whole number from 1 to 1000")
      .optional(),
  })
  .strict();

/** A zod issue's path as a reader writes it: `paths[2]`, `a.b`; "" for the whole value. */
export function issuePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, k) => (typeof k === "number" ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), "");
}

/** "to: must be a node name (…)" or "extra: unknown field" from the first issue; `part` when the whole value is wrong. */
export function issueText(part: string, error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return `${part}: invalid`;
  const at = issuePath(issue.path);
  if (issue.code === "unrecognized_keys") return `${at ? `${at}.` : ""}${issue.keys[0] ?? "?"}: unknown field`;
  if (issue.path.length === 0) return `${part}: ${issue.code === "invalid_type" ? `must be ${issue.expected === "object" ? "a JSON object" : issue.expected}` : issue.message}`;
  return `${at}: ${issue.message}`;
}

const compileZod: FastifySchemaCompiler<unknown> = ({ schema, httpPart, method, url }) => {
  const part = httpPart ?? "body";
  // A JSON schema left on a route fails the API's start (a programming error), never a request.
  if (!(schema instanceof z.ZodType)) throw new TypeError(`${method} ${url}: the ${part} schema is not a zod schema (src/api/validate.ts)`);
  return (data: unknown) => {
    const r = schema.safeParse(data);
    // The handler answers 400 with `why` (server.ts); fastify adds statusCode 400.
    return r.success ? { value: r.data } : { error: new UnderstudyError("US_E_API_BAD_REQUEST", { why: issueText(part, r.error) }) };
  };
};

/**
 * Fastify's schema controller: zod validates; responses have no schemas (JSON.stringify, as fastify does
 * without one). Fastify types the factories as ajv's; it calls them as plain functions (schema-controller.js).
 */
type SchemaController = NonNullable<FastifyServerOptions["schemaController"]>;
type Factories = NonNullable<SchemaController["compilersFactory"]>;
export const ZOD_SCHEMAS: SchemaController = {
  compilersFactory: {
    buildValidator: (() => compileZod) as unknown as NonNullable<Factories["buildValidator"]>,
    buildSerializer: (() => () => (data: unknown) => JSON.stringify(data)) as unknown as NonNullable<Factories["buildSerializer"]>,
  },
};
