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
}

export interface Executor {
  run(req: ExecRequest): Promise<ExecOutcome>;
}

/** The PATH every script starts with; a host's own profile is not read. */
export const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const TICK_MS = 5000;

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
