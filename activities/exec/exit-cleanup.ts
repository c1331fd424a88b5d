// Directories a process made for its own use under the temp dir (gpg homes with a private key,
// rpm key databases) and removes when it exits normally, also when nothing else got to it: one
// 'exit' hook for all of them. The hook must be synchronous (Node runs no more I/O then).
import fs from 'node:fs';

const dirs = new Map<string, ((dir: string) => void) | undefined>();
let hooked = false;

/** Removes `dir` when the process exits, after `before(dir)` (synchronous; e.g. stop a daemon that
 * lives in it), unless forgetAtExit was called for it first. */
export function removeAtExit(dir: string, before?: (dir: string) => void): void {
  dirs.set(dir, before);
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const [d, fn] of dirs) {
      try {
        fn?.(d);
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
      }
    }
  });
}

/** `dir` was removed by its owner: nothing to do for it at exit. */
export function forgetAtExit(dir: string): void {
  dirs.delete(dir);
}

/** Whether `dir` is one of this process's, still to be removed at exit. */
export function removedAtExit(dir: string): boolean {
  return dirs.has(dir);
}
