// bwrap's PID 1: the process that holds a sandbox's PID namespace together. Killing it kills every
// process of the namespace (the kernel's rule for a namespace's init), `setsid` daemons included.
//
// It is not in the process group runProcess kills (bwrap's `--new-session` gives it a session of its
// own), and `--die-with-parent` alone does not cover it: bwrap sets the parent-death signal in PID 1
// only after forking the command, so when the outer bwrap dies in between (a cancellation right after
// the step started, on a loaded machine) PID 1 never gets the signal and the namespace lives on,
// holding the step's output pipes open, and the activity never settles. So bwrap reports PID 1 on
// `--info-fd` (its `child-pid`, as the host sees it) and runProcess kills it with the group
// (RunOptions.companions).
//
// A PID can be reused once its process is gone: a NamespaceInit also records the process's start
// time (field 22 of /proc/<pid>/stat), and is killed only while that still matches.
import fs from 'node:fs';

export interface NamespaceInit {
  pid: number;
  /** Start time in clock ticks since boot, from /proc/<pid>/stat. */
  startTicks: string;
}

/** Field `n` (1-based, as in proc(5)) of /proc/<pid>/stat, or undefined when the process is gone. */
function statField(pid: number, n: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold anything: count after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n - 3];
  } catch {
    return undefined;
  }
}

/** SIGKILL to the recorded process, only if it is still the same process. */
export function killNamespaceInit(init: NamespaceInit): void {
  if (statField(init.pid, 22) !== init.startTicks) return;
  try {
    process.kill(init.pid, 'SIGKILL');
  } catch {
    /* gone meanwhile */
  }
}

/** True when `pid` is PID 1 of a PID namespace below ours (proc(5): NSpid). */
function isNamespaceInit(pid: number): boolean {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const nspid = /^NSpid:\s*(.+)$/m.exec(status)?.[1].trim().split(/\s+/) ?? [];
    return nspid.length > 1 && nspid[nspid.length - 1] === '1';
  } catch {
    return false;
  }
}

/**
 * Reads bwrap's `--info-fd` JSON from `stream` until it names `child-pid` (bwrap writes it before it
 * lets the sandbox run) and records that process, checked to be PID 1 of a namespace.
 * Resolves undefined when it has already ended (a command quicker than the read): nothing is left
 * to kill then.
 */
export function readNamespaceInit(stream: NodeJS.ReadableStream): Promise<NamespaceInit | undefined> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (b: Buffer) => {
      text += b.toString('utf8');
      let parsed: { 'child-pid'?: unknown };
      try {
        parsed = JSON.parse(text) as { 'child-pid'?: unknown };
      } catch {
        return; // not complete yet
      }
      stream.removeListener('data', onData);
      const pid = parsed['child-pid'];
      if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1) {
        reject(new Error(`bwrap reported no PID 1 (${text.trim()})`));
        return;
      }
      const startTicks = statField(pid, 22);
      resolve(startTicks !== undefined && isNamespaceInit(pid) ? { pid, startTicks } : undefined);
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`bwrap gave no PID (${text.trim() || 'nothing'})`)));
  });
}
