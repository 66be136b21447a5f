import { z } from "zod";
import { programArgv } from "./fields.js";

// Drained switchover (docs/configuration.md, "drain"): how the primary refuses
// new transfer sessions while `switchover --drain` waits for the running ones,
// and which ports it counts them on.
export const drainSection = z
  .object({
    /** Service ports whose established sessions are counted (and refused by the firewall gate). Default: the ports of the ssh, sftp, ftp, ftps and tcp probes. */
    ports: z.array(z.number().int().min(1).max(65535)).min(1).max(64).optional(),
    /** firewall: an nftables rule on the floating IP; command: stop_accepting / resume_accepting; none: only wait. */
    gate: z.enum(["firewall", "command", "none"]).optional(),
    stop_accepting: programArgv.optional(),
    resume_accepting: programArgv.optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    const gate = d.gate ?? (d.stop_accepting ? "command" : "firewall");
    if (gate === "command" && !d.stop_accepting) ctx.addIssue({ code: "custom", path: ["stop_accepting"], message: "is required for gate command" });
    if (gate !== "command" && (d.stop_accepting || d.resume_accepting)) {
      ctx.addIssue({ code: "custom", path: [d.stop_accepting ? "stop_accepting" : "resume_accepting"], message: `is only used with gate command (gate is ${gate})` });
    }
    if (d.resume_accepting && !d.stop_accepting) ctx.addIssue({ code: "custom", path: ["resume_accepting"], message: "needs stop_accepting" });
  });
