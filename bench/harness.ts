// The benchmarks' shared harness: one context per benchmark (a temp dir, child processes and
// clean-ups that always run, also on failure or Ctrl-C), ours/peer rounds interleaved so a busy
// neighbour on the shared 2-core machine hurts both sides alike, a table printer and the JSON
// written under bench/results/.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { signalGroup, type Service } from '../cli/local-stack/services';

export type Cell = string | number;
export type Row = Record<string, Cell>;

export interface BenchResult {
  rows: Row[];
  /** The benchmark's headline numbers, printed as its last line and kept in the JSON. */
  figures: Record<string, Cell>;
  notes: string[];
  /** Measurements too detailed for the table or the last line, kept in the JSON only. */
  details?: Record<string, unknown>;
}

export interface BenchContext {
  name: string;
  quick: boolean;
  /** A temp dir of this benchmark, removed at the end. */
  dir: string;
  log(line: string): void;
  /** Runs at the end of the benchmark, newest first, whatever happened. */
  defer(fn: () => Promise<void> | void): void;
  /** A service (spawnService) stopped at the end. */
  service(svc: Service): Service;
  /** Spawns a short or long child in its own process group, killed at the end if still running. */
  spawn(file: string, args: string[], opts?: SpawnOptions): ChildProcess;
}

export interface Benchmark {
  name: string;
  describe: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

const live = new Set<ChildProcess>();

/** Kills every child still running (process groups): on exit, SIGINT and SIGTERM. */
export function installChildReaper(): void {
  const reap = () => {
    for (const c of live) signalGroup(c.pid, 'SIGKILL');
  };
  process.once('exit', reap);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping children\n`);
      reap();
      process.exit(130);
    });
  }
}

export function trackChild(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export function createContext(
  name: string,
  quick: boolean,
): {
  ctx: BenchContext;
  close(): Promise<void>;
} {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `conveyor-bench-${name}-`));
  // Workspaces live under it, and bwrap resolves their bind mounts as the sandbox uid: passable
  // (not listable) by others, or every step is refused as SandboxUnavailable (activities/exec/sandbox.ts).
  fs.chmodSync(dir, 0o711);
  const deferred: (() => Promise<void> | void)[] = [];
  const started = performance.now();
  const ctx: BenchContext = {
    name,
    quick,
    dir,
    log: (line) => process.stderr.write(`[${name} ${((performance.now() - started) / 1000).toFixed(1)}s] ${line}\n`),
    defer: (fn) => void deferred.push(fn),
    service(svc) {
      trackChild(svc.child);
      deferred.push(() => svc.stop(5000));
      return svc;
    },
    spawn(file, args, opts = {}) {
      const child = trackChild(spawn(file, args, { stdio: 'ignore', ...opts, detached: true }));
      deferred.push(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((r) => child.once('exit', r));
        signalGroup(child.pid, 'SIGTERM');
        const t = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      });
      return child;
    },
  };
  return {
    ctx,
    async close() {
      for (const fn of deferred.reverse()) {
        try {
          await fn();
        } catch (err) {
          ctx.log(`clean-up failed: ${(err as Error).message}`);
        }
      }
      if (!process.env.CONVEYOR_BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
      else ctx.log(`kept ${dir}`);
    },
  };
}

/** Runs a command to its end; rejects with its output on a non-zero exit. */
export function run(
  ctx: BenchContext,
  file: string,
  args: string[],
  opts: SpawnOptions & { stdoutFile?: string } = {},
): Promise<{ stdout: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const out = opts.stdoutFile ? fs.openSync(opts.stdoutFile, 'w') : 'pipe';
    const child = ctx.spawn(file, args, { ...opts, stdio: ['ignore', out, 'pipe'] });
    if (typeof out === 'number') fs.closeSync(out);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (code, sig) => {
      if (code === 0) resolve({ stdout, ms: performance.now() - t0 });
      else reject(new Error(`${file} ${args.slice(0, 4).join(' ')}… exited ${code ?? sig}: ${stderr}`));
    });
  });
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

export interface Interleaved {
  ours: number[];
  peer: number[];
  /** median(ours) ÷ median(peer) */
  ratio: number;
}

/**
 * `rounds` of ours and the peer, alternating which goes first (ABBA), each preceded by its own
 * untimed `prepare` (fresh buckets, output dirs). Returns the times in ms.
 */
export async function interleave(
  ctx: BenchContext,
  rounds: number,
  sides: {
    ours: (round: number) => Promise<void>;
    peer: (round: number) => Promise<void>;
    prepare?: (side: 'ours' | 'peer', round: number) => Promise<void>;
  },
): Promise<Interleaved> {
  const times = { ours: [] as number[], peer: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    const order: ('ours' | 'peer')[] = r % 2 === 0 ? ['ours', 'peer'] : ['peer', 'ours'];
    for (const side of order) {
      await sides.prepare?.(side, r);
      const { ms } = await timed(() => sides[side](r));
      times[side].push(ms);
      ctx.log(`round ${r + 1}/${rounds} ${side}: ${ms.toFixed(0)} ms`);
    }
  }
  return { ...times, ratio: median(times.ours) / median(times.peer) };
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}

export const ms = (x: number) => Math.round(x);
export const r2 = (x: number) => Math.round(x * 100) / 100;
export const mb = (bytes: number) => Math.round((bytes / 1e6) * 10) / 10;

/** A plain-text table with columns sized to their widest cell; numbers right-aligned. */
export function formatTable(rows: Row[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const text = (v: Cell | undefined) =>
    v === undefined ? '' : typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : String(v)) : v;
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => text(r[c]).length)));
  const line = (cells: string[], nums: boolean[]) =>
    '| ' + cells.map((c, i) => (nums[i] ? c.padStart(width[i]) : c.padEnd(width[i]))).join(' | ') + ' |';
  const out = [
    line(
      cols,
      cols.map(() => false),
    ),
    '|' + width.map((w) => '-'.repeat(w + 2)).join('|') + '|',
  ];
  for (const r of rows)
    out.push(
      line(
        cols.map((c) => text(r[c])),
        cols.map((c) => typeof r[c] === 'number'),
      ),
    );
  return out.join('\n');
}

export function figuresLine(name: string, figures: Record<string, Cell>): string {
  return `${name}: ${Object.entries(figures)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}`;
}

export function machine(): Record<string, Cell> {
  return {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? '?',
    memGB: Math.round(os.totalmem() / 1e9),
    load1: r2(os.loadavg()[0]),
    node: process.version,
    kernel: os.release(),
  };
}

/** Peak and current resident set of a process from /proc (VmHWM, VmRSS), in bytes. */
export function memoryOf(pid: number): { hwm: number; rss: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux for every architecture we run on). */
const USER_HZ = 100;

/**
 * CPU seconds a process tree has used: user + system of each live process, plus what its reaped
 * children used (cutime/cstime: the tools an activity ran and waited for, gpg, createrepo_c, …).
 * Differences of two readings give a window's share, as long as the processes lived through it.
 */
export function cpuSecondsOf(pid: number): { self: number; children: number } {
  let self = 0;
  let children = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14–17 of proc(5), here 0-based after the command name: utime stime cutime cstime.
      self += Number(f[11]) + Number(f[12]);
      children += Number(f[13]) + Number(f[14]);
    } catch {
      /* gone */
    }
  }
  return { self: self / USER_HZ, children: children / USER_HZ };
}

/** The machine's CPU seconds so far, busy (everything but idle and iowait) and in all, all cores. */
export function machineCpuSeconds(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: (total - v[3] - v[4]) / USER_HZ, total: total / USER_HZ };
}

/** The pids of a process and all its descendants (tsx runs node under node). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** Checks that a tool is on PATH; the error says how to install it. */
export function requireTool(name: string, install: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(`${name} is not installed: ${install}`);
}
