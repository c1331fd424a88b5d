// Host-exec: how an e2e step runs a command on a staging host of its own run without holding any
// way to reach a host itself. The step (repository code, on a builder) calls CONVEYOR_HOST_EXEC, a
// small client that writes one request to a unix socket; the builder's runE2e activity relays it
// as the `hostExec` Update to the verify stage workflow of that run; the workflow's validator
// accepts only this run's hosts, while its e2e step runs, within the limits below; its handler
// runs `execOnHost` on the orchestrator's queue through the fleet executor (local, ssh, ssm).
// Every request and answer is in the run's history, so nothing secret may travel in them: the
// step has no secret to send, and the answer carries only what the command printed.
//
// Pure (no I/O, no Buffer): the workflow's validator uses it, and so do the relay and the tests.

/** The failure type of the verify stage's validator: the client exits 2 for it, as for a usage error. */
export const HOST_EXEC_REFUSED = 'HostExecRefused';

/** Caps. Bytes travel base64-encoded in the history (4/3 of their size). */
export const HostExecLimits = {
  /** stdin of one command. */
  stdinBytes: 256 * 1024,
  /** Each of stdout and stderr of one command (the first bytes are kept, the rest is reported cut). */
  outputBytes: 256 * 1024,
  /** The argv of one command, all strings together (it becomes one quoted `sh -c` line on the host). */
  argvBytes: 64 * 1024,
  argvItems: 1024,
  /** Requests per verify run, and bytes (stdin + stdout + stderr) per run: a history holds at most
   * 50 MB, and the run's history is where every command is recorded. */
  requestsPerRun: 500,
  bytesPerRun: 32 * 1024 * 1024,
  /** Host names as the fleet reports them (EC2 Name tags). */
  hostName: 255,
} as const;

/** What the client sends (one JSON line) and the relay forwards unchanged as the Update's argument. */
export interface HostExecRequest {
  /** A host name from CONVEYOR_HOSTS. */
  host: string;
  /** Run as is on the host (`exec` of these words, each one quoted). */
  argv: string[];
  /** base64; absent: the command's stdin is empty. */
  stdin?: string;
}

/** The Update's result; the relay writes it back to the client as one JSON line. */
export interface HostExecResult {
  /** The command's exit code; 124 when it ran out of time, 128+n when killed by signal n. */
  exitCode: number;
  /** base64 of the first HostExecLimits.outputBytes of each stream. */
  stdout: string;
  stderr: string;
  stdoutTruncated?: boolean;
  stderrTruncated?: boolean;
  timedOut?: boolean;
  durationMs?: number;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decoded size of a base64 string (checked with BASE64 first). */
export function base64Bytes(text: string): number {
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return (text.length / 4) * 3 - pad;
}

/** UTF-8 length without TextEncoder (the workflow sandbox may not offer it). */
function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Why a request cannot be run on one of `hosts`, or undefined when it can. Checks the shape too:
 * the request comes from repository code, through a relay that forwards it as it came. */
export function hostExecRefusal(req: unknown, hosts: readonly string[]): string | undefined {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return 'the request is not an object';
  const r = req as Record<string, unknown>;
  const extra = Object.keys(r).filter((k) => k !== 'host' && k !== 'argv' && k !== 'stdin');
  if (extra.length > 0) return `unknown field(s) in the request: ${extra.slice(0, 5).join(', ')}`;
  if (typeof r.host !== 'string' || r.host.length === 0 || r.host.length > HostExecLimits.hostName) {
    return 'host must be a host name from CONVEYOR_HOSTS';
  }
  if (!hosts.includes(r.host)) {
    return `host ${JSON.stringify(r.host)} is not a staging host of this run (its hosts: ${hosts.join(', ') || 'none'})`;
  }
  if (!Array.isArray(r.argv) || r.argv.length === 0) return 'argv must be a non-empty list of strings';
  if (r.argv.length > HostExecLimits.argvItems) return `argv has more than ${HostExecLimits.argvItems} words`;
  let bytes = 0;
  for (const a of r.argv as unknown[]) {
    if (typeof a !== 'string') return 'argv must be a list of strings';
    if (a.includes('\0')) return 'an argv word contains a NUL byte';
    bytes += utf8Bytes(a) + 1;
  }
  if ((r.argv[0] as string).length === 0) return 'the command (argv[0]) is empty';
  if (bytes > HostExecLimits.argvBytes) return `argv is longer than ${HostExecLimits.argvBytes} bytes`;
  if (r.stdin !== undefined) {
    if (typeof r.stdin !== 'string' || !BASE64.test(r.stdin)) return 'stdin must be base64';
    if (base64Bytes(r.stdin) > HostExecLimits.stdinBytes) {
      return `stdin is larger than ${HostExecLimits.stdinBytes / 1024} KiB`;
    }
  }
  return undefined;
}
