import { formatListenAddress } from "../platform/listen-address.js";

/** The API's port when api.listen does not name one. */
export const DEFAULT_API_PORT = 8470;

/** api.listen's default: the node's own address (the one its member key advertises), not 0.0.0.0. */
export function defaultApiListen(address: string): string {
  return formatListenAddress(address, DEFAULT_API_PORT);
}
