// What every way of reaching a host offers: run one trusted shell script with some environment
// values, stream its combined output into a local log file, report its exit. Executors never
// throw for a non-zero exit (the caller decides what it means); they throw for a host that
// cannot be reached, and report a cancellation after making sure the script is stopped.
import type { Host } from './types';

export interface ExecRequest {
  host: Host;
  /** Trusted text (built here from validated values, or a command from conveyor.yml); run by sh. */
  script: string;
  /** Names checked by checkEnv; values are data, never parsed by a shell. */
  env: Record<string, string>;
  /** Receives stdout and stderr as they come (ssm: once the command is done). */
  logFile: string;
  signal?: AbortSignal;
  /** Called every few seconds while the script runs: the activity's heartbeat. */
  onTick?: (elapsedMs: number) => void;
  timeoutMs?: number;
  /** A few words on what this is (ssm: the command's Comment). */
  purpose: string;
  /** Bytes for the script's stdin (host-exec); default none. ssh and ssm cannot stream a stdin
   * (ssh's is the watchdog's, ssm has none), so they carry it inside the script, up to
   * REMOTE_STDIN_BYTES (scripts.ts). */
  stdin?: Buffer;
  /** Keep the first this many bytes of stdout and of stderr, each, in the outcome (host-exec). */
  captureBytes?: number;
}

export interface ExecOutcome {
  /** null when the script was killed or its exit is unknown. */
  exitCode: number | null;
  signal: string | null;
  /** The last few KB of output. */
  tail: string;
  durationMs: number;
  cancelled: boolean;
  timedOut: boolean;
  /** With captureBytes: stdout and stderr apart. */
  captured?: CapturedOutput;
}

export interface CapturedOutput {
  stdout: Buffer;
  stderr: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export interface Executor {
  run(req: ExecRequest): Promise<ExecOutcome>;
}

/** The PATH every script starts with; a host's own profile is not read. */
export const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const TICK_MS = 5000;

/** The first `bytes` of stdout and of stderr. */
export class Capture {
  private readonly parts = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  private readonly kept = { stdout: 0, stderr: 0 };
  private readonly cut = { stdout: false, stderr: false };
  constructor(private readonly bytes: number) {}
  push = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
    const room = this.bytes - this.kept[stream];
    if (chunk.length > room) this.cut[stream] = true;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.parts[stream].push(Buffer.from(part));
    this.kept[stream] += part.length;
  };
  result(): CapturedOutput {
    return {
      stdout: Buffer.concat(this.parts.stdout),
      stderr: Buffer.concat(this.parts.stderr),
      stdoutTruncated: this.cut.stdout,
      stderrTruncated: this.cut.stderr,
    };
  }
}

/** A bounded tail of a byte stream. */
export class Tail {
  private buf = Buffer.alloc(0);
  constructor(private readonly bytes = 4000) {}
  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.buf.length > this.bytes * 2) this.buf = this.buf.subarray(this.buf.length - this.bytes);
  }
  text(): string {
    return this.buf.subarray(Math.max(0, this.buf.length - this.bytes)).toString('utf8');
  }
}
