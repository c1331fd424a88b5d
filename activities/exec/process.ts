// Child processes for activities: argv only (never a shell line built from values), a process
// group per command so cancellation kills the whole tree, output to a log file plus a short tail.
// A bwrap sandbox's PID 1 is outside that group (a session of its own): the caller names it
// (`namespaceInit`, read from bwrap's --info-fd) and it is killed with the group (namespace-init.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { killNamespaceInit, type NamespaceInit } from './namespace-init';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile?: string;
  signal?: AbortSignal;
  /** Called every `heartbeatMs` while the process runs. */
  onTick?: (elapsedMs: number, bytes: number) => void;
  heartbeatMs?: number;
  tailBytes?: number;
  timeoutMs?: number;
  /** Written to the child's stdin, which is then closed; default: no stdin (/dev/null). */
  stdin?: Buffer;
  /** Every chunk of output as it comes, by stream (besides the log and the tail). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Descriptors 3, 4, … of the child: an open fd of ours, or 'pipe' (then `child.stdio[3…]`). */
  extraFds?: (number | 'pipe')[];
  /** Called right after the spawn, e.g. to talk over the extra pipes. */
  onSpawn?: (child: ChildProcess) => void;
  /** Aborting it kills the process tree like a timeout (the outcome says `stopped`, not `cancelled`). */
  stop?: AbortSignal;
  /** Called right after the spawn: bwrap's PID 1 (from its --info-fd on one of `extraFds`), which every
   * kill of the tree (cancellation, timeout, stop) kills too, even after bwrap itself has exited. */
  namespaceInit?: (child: ChildProcess) => Promise<NamespaceInit | undefined>;
}

export interface RunOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  tail: string;
  output: string;
  durationMs: number;
  cancelled: boolean;
  timedOut: boolean;
  /** Killed because `stop` was aborted (a sandbox limit, for instance). */
  stopped: boolean;
}

const KILL_GRACE_MS = 5000;

/** Runs `file args…` to completion. Never throws for a non-zero exit: callers decide what it means. */
export function runProcess(file: string, args: string[], opts: RunOptions = {}): Promise<RunOutcome> {
  const tailBytes = opts.tailBytes ?? 4000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const log = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    let tail = Buffer.alloc(0);
    // Keep all output only when there is no log file, capped, for short commands (git and the like).
    const chunks: Buffer[] = [];
    let kept = 0;
    let bytes = 0;
    let cancelled = false;
    let timedOut = false;
    let stopped = false;
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...(opts.extraFds ?? [])],
      detached: true, // own process group: kill(-pid) reaches every descendant
    });
    // A failed read (bwrap never started) leaves nothing to kill but the group.
    const init = opts.namespaceInit?.(child).catch(() => undefined);
    const onData = (buf: Buffer) => {
      bytes += buf.length;
      log?.write(buf);
      tail = Buffer.concat([tail, buf]);
      if (tail.length > tailBytes * 2) tail = tail.subarray(tail.length - tailBytes);
      if (!log && kept < 1_000_000) {
        chunks.push(buf);
        kept += buf.length;
      }
    };
    child.stdout?.on('data', (buf: Buffer) => {
      onData(buf);
      opts.onOutput?.('stdout', buf);
    });
    child.stderr?.on('data', (buf: Buffer) => {
      onData(buf);
      opts.onOutput?.('stderr', buf);
    });
    if (opts.stdin && child.stdin) {
      // A command that exits without reading its input is not an error (EPIPE).
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.stdin);
    }

    let killTimer: NodeJS.Timeout | undefined;
    const killTree = () => {
      // First, and whether or not bwrap still runs: its PID 1 may outlive it.
      void init?.then((i) => i && killNamespaceInit(i));
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      if (killTimer) return; // already on its way out (a timeout and a cancellation can coincide)
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      killTimer = setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, KILL_GRACE_MS);
    };
    const onAbort = () => {
      cancelled = true;
      killTree();
    };
    const onStop = () => {
      stopped = true;
      killTree();
    };
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.stop?.aborted) onStop();
    opts.stop?.addEventListener('abort', onStop, { once: true });
    const tick = opts.onTick
      ? setInterval(() => opts.onTick?.(Date.now() - started, bytes), opts.heartbeatMs ?? 5000)
      : undefined;
    const timeout = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          killTree();
        }, opts.timeoutMs)
      : undefined;

    child.on('error', (err) => {
      cleanup();
      reject(err);
    });
    child.on('close', (code, sig) => {
      cleanup();
      const finish = () => {
        const tailText = tail.subarray(Math.max(0, tail.length - tailBytes)).toString('utf8');
        resolve({
          exitCode: code,
          signal: sig,
          tail: tailText,
          output: log ? tailText : Buffer.concat(chunks).toString('utf8'),
          durationMs: Date.now() - started,
          cancelled,
          timedOut,
          stopped,
        });
      };
      if (log) log.end(finish);
      else finish();
    });
    function cleanup() {
      if (tick) clearInterval(tick);
      if (timeout) clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      opts.stop?.removeEventListener('abort', onStop);
    }
    opts.onSpawn?.(child);
  });
}

/** Runs a short helper command and returns its stdout; throws with its output on failure. */
export async function runChecked(file: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await runProcess(file, args, opts);
  if (r.exitCode !== 0) {
    throw new Error(`${file} ${args.join(' ')} exited with ${r.exitCode ?? r.signal}: ${r.output.trim().slice(-2000)}`);
  }
  return r.output;
}

/** The environment a configured step sees: a minimal base plus CONVEYOR_* values. Never the
 * worker's own secrets (webhook secret, GitHub token, AWS credentials). */
export function stepEnv(extra: Record<string, string>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'USER', 'SHELL', 'TERM'];
  const env: NodeJS.ProcessEnv = {};
  for (const k of keep) if (base[k] !== undefined) env[k] = base[k];
  return { ...env, ...extra };
}

/** `p`, or the signal's reason as soon as it is aborted: one waiter's cancellation, while the
 * work behind `p` is shared with others and goes on. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
