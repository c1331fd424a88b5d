// The host-exec relay: a unix socket served by the builder's runE2e activity, outside the step,
// for as long as the step runs. Each connection carries one request line from the
// conveyor-host-exec client (host-exec-client.js) and gets one answer line back. The relay decides
// nothing: it forwards the request as it came to the verify stage workflow of this run (the
// `hostExec` Update), whose validator decides, and whose handler runs the command on the
// orchestrator's queue. It only bounds what it reads and how many requests it has in flight.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { HOST_EXEC_REFUSED, HostExecLimits, type HostExecRequest, type HostExecResult } from '../../common/host-exec';

/** A request line: stdin (base64) plus argv, with room for JSON escapes. */
const REQUEST_MAX = Math.ceil((HostExecLimits.stdinBytes * 4) / 3) + HostExecLimits.argvBytes * 6 + 4096;

export interface HostExecRelayOptions {
  socketPath: string;
  forward: (req: HostExecRequest) => Promise<HostExecResult>;
  /** Requests forwarded at once; more wait for a free slot. */
  maxInFlight?: number;
  log?: (message: string, meta?: Record<string, unknown>) => void;
}

export interface HostExecRelay {
  /** Stops serving; requests still in flight are left to the workflow (it cancels them when the
   * e2e step is over). */
  close(): Promise<void>;
  /** How many requests were forwarded. */
  forwarded(): number;
}

/** What the client prints instead of the command's output. */
interface RelayError {
  error: string;
  exitCode: number;
}

export async function startHostExecRelay(opts: HostExecRelayOptions): Promise<HostExecRelay> {
  const maxInFlight = opts.maxInFlight ?? 4;
  let inFlight = 0;
  let forwarded = 0;
  const waiting: (() => void)[] = [];
  const sockets = new Set<net.Socket>();

  const slot = async (): Promise<() => void> => {
    while (inFlight >= maxInFlight) await new Promise<void>((r) => waiting.push(r));
    inFlight++;
    return () => {
      inFlight--;
      waiting.shift()?.();
    };
  };

  const answer = async (line: string): Promise<HostExecResult | RelayError> => {
    let req: HostExecRequest;
    try {
      req = JSON.parse(line) as HostExecRequest;
    } catch {
      return { error: 'malformed request (not one JSON line)', exitCode: 2 };
    }
    const release = await slot();
    forwarded++;
    try {
      return await opts.forward(req);
    } catch (err) {
      return relayError(err);
    } finally {
      release();
    }
  };

  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined); // a client that went away; nothing to tell it
    let buf = '';
    let done = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      if (done) return;
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0 && buf.length <= REQUEST_MAX) return;
      done = true;
      const reply =
        nl < 0 || nl > REQUEST_MAX
          ? Promise.resolve<RelayError>({ error: `request larger than ${REQUEST_MAX} bytes`, exitCode: 2 })
          : answer(buf.slice(0, nl));
      void reply.then((a) => {
        if (!sock.destroyed) sock.end(`${JSON.stringify(a)}\n`);
      });
    });
  });
  // A step that opens connections and sends nothing hurts only itself; still, bound them.
  server.maxConnections = 64;
  fs.rmSync(opts.socketPath, { force: true });
  // A unix socket's path holds at most 107 bytes, and a longer one is cut silently: a socket in a
  // deep workspace is made under a short temp dir and renamed into place (it stays bound).
  const short = opts.socketPath.length < 100 ? undefined : fs.mkdtempSync(path.join(shortTmp(), 'conveyor-hx-'));
  const listenPath = short ? path.join(short, 's') : opts.socketPath;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (short) fs.renameSync(listenPath, opts.socketPath);
  } finally {
    if (short) fs.rmSync(short, { recursive: true, force: true });
  }
  // The step may run as another uid (the sandbox's): anyone who can reach the socket may use it;
  // who can reach it is decided by the directory's binds.
  fs.chmodSync(opts.socketPath, 0o666);
  opts.log?.('host-exec relay listening', { socket: opts.socketPath });

  return {
    forwarded: () => forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function shortTmp(): string {
  const tmp = os.tmpdir();
  return tmp.length < 60 ? tmp : '/tmp';
}

function relayError(err: unknown): RelayError {
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause;
    const app = innermostApplicationFailure(cause);
    if (app?.type === HOST_EXEC_REFUSED) return { error: `refused: ${app.message}`, exitCode: 2 };
    return { error: `host-exec failed: ${app?.message ?? cause?.message ?? err.message}`, exitCode: 255 };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { error: `the verify workflow did not answer: ${message}`, exitCode: 255 };
}

function innermostApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let found: ApplicationFailure | undefined;
  for (let cur: unknown = err; cur instanceof TemporalFailure; cur = cur.cause) {
    if (cur instanceof ApplicationFailure) found = cur;
  }
  return found;
}
