// Directories a process made for its own use under the temp dir (gpg homes with a private key,
// rpm key databases) and removes when it exits normally, also when nothing else got to it: one
// 'exit' hook for all of them. The hook must be synchronous (Node runs no more I/O then).
// A process killed outright leaves its directories behind: each names its owner (markOwner), and
// a later process removes those whose owner is gone (sweepOwnedDirs).
import fs from 'node:fs';
import path from 'node:path';

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

const OWNER_FILE = '.conveyor-owner';

/** `<pid> <start time>` of a running process from /proc (start time in clock ticks since boot);
 * undefined when there is no such process, or it has ended and is a zombie not yet reaped. */
function processIdentity(pid: number | 'self'): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return `${pid === 'self' ? process.pid : pid} ${fields[19]}`;
  } catch {
    return undefined;
  }
}

/** This process's PID namespace (`pid:[<inode>]`), or undefined where /proc cannot say. A pid
 * means a process only within its namespace: containers or sandboxes that share this temp
 * directory each count their own pids. */
function pidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/** The owner line of a directory: `<pid> <start time> <pid namespace>`, the last two `?` where
 * /proc cannot say. */
function ownerLine(): string {
  return `${processIdentity('self') ?? `${process.pid} ?`} ${pidNamespace() ?? '?'}`;
}

/** Writes `dir`'s owner file: this process (ownerLine). */
export async function markOwner(dir: string): Promise<void> {
  await fs.promises.writeFile(path.join(dir, OWNER_FILE), ownerLine());
}

/** Removes the directories named `<prefix>…` under `dir` whose owner process is gone (killed
 * before it could remove them), after `o.before(dir)`. One without an owner file (made by an
 * older version, or being made right now) goes only with `o.ownerlessAfterMs`, once it is that
 * old. An owner in another PID namespace (a worker in another container sharing this directory)
 * is never judged: its pid means nothing here, and a live owner's directory would go. The
 * directories removed. */
export async function sweepOwnedDirs(
  dir: string,
  prefix: string,
  o: { now?: number; ownerlessAfterMs?: number; before?: (dir: string) => Promise<void> } = {},
): Promise<string[]> {
  const now = o.now ?? Date.now();
  const removed: string[] = [];
  const ours = pidNamespace();
  for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const owned = path.join(dir, name);
    if (removedAtExit(owned)) continue;
    try {
      const owner = await fs.promises.readFile(path.join(owned, OWNER_FILE), 'utf8').catch(() => undefined);
      if (owner !== undefined) {
        // Owner lines of earlier versions have no namespace: taken as this one's.
        const [pid, start, namespace] = owner.trim().split(' ');
        if (namespace !== undefined && (namespace === '?' || namespace !== ours)) continue;
        const alive = processIdentity(Number(pid));
        // Where /proc cannot say, a live pid is taken as the owner.
        if (alive !== undefined && (start === '?' || alive === `${pid} ${start}`)) continue;
        if (alive === undefined && !fs.existsSync('/proc/self/stat')) continue;
      } else if (
        o.ownerlessAfterMs === undefined ||
        now - (await fs.promises.stat(owned)).mtimeMs < o.ownerlessAfterMs
      ) {
        continue;
      }
      await o.before?.(owned);
      await fs.promises.rm(owned, { recursive: true, force: true });
      removed.push(owned);
    } catch {
      // another process's directory, or gone meanwhile: not ours to judge
    }
  }
  return removed;
}
