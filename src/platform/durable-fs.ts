// The port for file writes that safety depends on: the sync state (which
// generation this node holds), files moved into place by a sync, rescue
// folders, the keepalived track file that says who may hold the VIP. A power
// cut or a crash in the middle must leave the old content or the new, never a
// mix and never a file wider open than asked. The adapter is NodeDurableFs
// (node-durable-fs.ts); docs/architecture.md lists which writes go through it.

/**
 * Durable, atomic file writes.
 *
 * Guarantees an implementation must give:
 * - `writeFileAtomic(file, data, mode)`: once it resolves, `file` holds `data`
 *   and survives a power cut (file fsync, rename, directory fsync, in that
 *   order). Until then a reader of `file` sees the previous content or, if
 *   there was none, no file: never a partial file under the final name.
 * - The file ends with exactly `mode` (the umask does not narrow it), and at
 *   no moment is any file it creates, the temporary one included, readable
 *   more widely than `mode`. A leftover temporary file from a crash, maybe
 *   wider, is removed, never reused.
 * - A symbolic link is never followed when creating the temporary file.
 * - When it rejects, no temporary file is left behind (best effort: a failed
 *   cleanup does not replace the original error) and `file` is unchanged,
 *   except after the rename: then only the directory fsync failed, the new
 *   content is in place but not yet known to be durable.
 * - `fsyncDir(dir)` resolves once entries created, renamed or removed in
 *   `dir` are on disk. Both reject with the system error (ENOENT, EACCES,
 *   ENOSPC...), never a partial success; callers decide whether to retry.
 * - Writes to the same `file` must not run concurrently (one temporary name
 *   per process and file): callers serialise them.
 */
export interface DurableFs {
  writeFileAtomic(file: string, data: string | Uint8Array, mode: number): Promise<void>;
  fsyncDir(dir: string): Promise<void>;
}
