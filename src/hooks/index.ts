// Hooks (user commands on role changes and syncs) and the optional event webhook,
// built from the `hooks` section of the config. docs/configuration.md.
import type { Config } from "../config/load.js";
import type { Clock } from "../platform/clock.js";
import type { CommandRunner } from "../platform/command.js";
import type { Logger } from "../platform/logger.js";
import { HOOK_EVENTS, Hooks, type HookCommands } from "./runner.js";
import { Webhook } from "./webhook.js";

export { HOOK_EVENTS, Hooks, hookEnv, type HookContext, type HookEvent, type HookOutcome, type HookRole } from "./runner.js";
export { Webhook, WEBHOOK_FIRST_BACKOFF_MS, type WebhookOptions } from "./webhook.js";

export interface HooksBundle {
  readonly hooks: Hooks;
  readonly webhook: Webhook | null;
  /** Shutdown: wait (bounded) for queued hooks, then for webhook deliveries. */
  close(): Promise<void>;
}

export interface CreateHooksDeps {
  readonly runner: CommandRunner;
  readonly clock: Clock;
  readonly log: Logger;
}

/** Without a `hooks` section every hook is a no-op. 10s: the schema's default hooks.timeout. */
const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Build the configured hooks and webhook. Throws US_E_HOOK_CONFIG for settings a
 * hand-built config got wrong (the schema refuses them in a file). A failed hook
 * is also sent to the webhook, as { type: "hook_failed", hook, code, timed_out }.
 */
export function createHooks(config: Pick<Config, "hooks" | "cluster" | "node">, deps: CreateHooksDeps): HooksBundle {
  const section = config.hooks;
  const w = section?.webhook;
  const webhook = w
    ? new Webhook(
        { url: w.url, timeoutMs: w.timeout, retries: w.retries, ...(w.headers ? { headers: w.headers } : {}) },
        { clock: deps.clock, log: deps.log.child({ component: "webhook" }), cluster: config.cluster, node: config.node.name },
      )
    : null;
  const commands: HookCommands = {};
  for (const event of HOOK_EVENTS) {
    const argv = section?.[event];
    if (argv) commands[event] = argv;
  }
  const hooks = new Hooks(
    { commands, timeoutMs: section?.timeout ?? DEFAULT_TIMEOUT_MS },
    {
      runner: deps.runner,
      clock: deps.clock,
      log: deps.log.child({ component: "hooks" }),
      ...(webhook
        ? {
            onOutcome: (hook, o) => {
              if (!o.ok) webhook.notify({ type: "hook_failed", hook, code: o.code, timed_out: o.timedOut });
            },
          }
        : {}),
    },
  );
  return {
    hooks,
    webhook,
    close: async () => {
      await hooks.close();
      await webhook?.close();
    },
  };
}
