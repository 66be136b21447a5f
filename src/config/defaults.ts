import { isIP } from "node:net";

/** The API's port when api.listen does not name one. */
export const DEFAULT_API_PORT = 8470;

/** api.listen's default: the node's own address (the one its member key advertises), not 0.0.0.0. */
export function defaultApiListen(address: string): string {
  return isIP(address) === 6 ? `[${address}]:${DEFAULT_API_PORT}` : `${address}:${DEFAULT_API_PORT}`;
}
