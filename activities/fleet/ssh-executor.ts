// The `ssh` executor: the ssh2 package, public-key auth, host keys checked against known_hosts
// (known-hosts.ts; unknown or changed keys are refused, never learnt). One connection per script.
//
// Hazards:
// - sshd passes a client's environment only for names its AcceptEnv allows, so values travel as
//   quoted `export NAME='…'` lines in front of the script (validate.ts), never through `env`.
// - Closing an SSH channel does not stop what it started: without a tty the remote processes
//   just lose their output. So the script runs under a small fixed wrapper: it starts the script
//   in its own session (`setsid`, so it is a process group), and a watchdog reads our stdin; we
//   never write to it, so it ends only when we close it (cancellation, timeout) or when the
//   connection dies, and then the watchdog kills the script's whole process group.
// - Non-root users run the wrapper through `sudo -n` (no password prompt can be answered).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, type ClientChannel } from 'ssh2';
import { Capture, TICK_MS, Tail, type ExecOutcome, type ExecRequest, type Executor } from './executor';
import { FleetFailure, fleetFailure } from './failures';
import { checkHostKey, type HostKeyVerdict } from './known-hosts';
import { remoteScript } from './scripts';
import { exportLines, shellQuote } from './validate';
import type { SshSettings } from './types';

/** Run as `sh -c WRAPPER conveyor SCRIPT`. Kept POSIX (dash, busybox sh). */
const WRAPPER = [
  'exec 3<&0',
  'setsid sh -c "$1" conveyor-script 3<&- </dev/null &',
  'job=$!',
  '( cat <&3 >/dev/null 2>&1; kill -TERM -"$job" 2>/dev/null; sleep 5; kill -KILL -"$job" 2>/dev/null ) >/dev/null 2>&1 &',
  'watch=$!',
  'exec 3<&-',
  'wait "$job"',
  'rc=$?',
  'kill "$watch" 2>/dev/null',
  'exit "$rc"',
].join('\n');

/** How long after closing stdin we wait for the remote side to report before dropping the connection. */
const STOP_GRACE_MS = 15_000;

export function parseSshAddress(address: string | undefined): { host: string; port: number } {
  const m =
    /^\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})$/.exec(address ?? '') ??
    /^([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/.exec(address ?? '');
  const port = Number(m?.[2] ?? 22);
  if (!m || port < 1 || port > 65535) {
    throw fleetFailure(
      FleetFailure.BadConfig,
      `ssh address ${JSON.stringify(address)} is not host, host:port or [v6]:port (tag ConveyorSshAddress or a private IP)`,
    );
  }
  return { host: m[1], port };
}

function defaultKeyFile(): string {
  const dir = path.join(os.homedir(), '.ssh');
  const found = ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  return found ?? path.join(dir, 'id_ed25519');
}

/** The remote command line: everything in it is fixed text or quoted. */
export function sshCommand(script: string, env: Record<string, string>, user: string): string {
  const line = `sh -c ${shellQuote(WRAPPER)} conveyor ${shellQuote(`${exportLines(env)}${script}`)}`;
  return user === 'root' ? line : `sudo -n ${line}`;
}

export function sshExecutor(settings: SshSettings = {}, readyTimeoutMs = 20_000): Executor {
  return {
    async run(req: ExecRequest): Promise<ExecOutcome> {
      const { host, port } = parseSshAddress(req.host.address);
      const user = settings.user ?? 'root';
      const keyFile = settings.keyFile ?? defaultKeyFile();
      const knownHostsFile = settings.knownHostsFile ?? path.join(os.homedir(), '.ssh', 'known_hosts');
      let privateKey: Buffer;
      try {
        privateKey = fs.readFileSync(keyFile);
      } catch (err) {
        throw fleetFailure(
          FleetFailure.BadConfig,
          `cannot read the SSH key ${keyFile}: ${(err as NodeJS.ErrnoException).code}`,
        );
      }
      const known = fs.existsSync(knownHostsFile) ? fs.readFileSync(knownHostsFile, 'utf8') : '';
      const command = sshCommand(remoteScript(req), req.env, user);
      req.signal?.throwIfAborted();

      const conn = new Client();
      let verdict: HostKeyVerdict | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(req.signal?.reason as Error);
          req.signal?.addEventListener('abort', onAbort, { once: true });
          let ready = false;
          conn.once('ready', () => {
            ready = true;
            req.signal?.removeEventListener('abort', onAbort);
            resolve();
          });
          // After `ready` a dropped connection closes the channel, which execute() reports.
          conn.on('error', (err: Error & { level?: string }) => {
            if (ready) return;
            req.signal?.removeEventListener('abort', onAbort);
            reject(connectFailure(err, verdict, user, host, port, req.host.name));
          });
          conn.connect({
            host,
            port,
            username: user,
            privateKey,
            readyTimeout: readyTimeoutMs,
            hostVerifier: (key: Buffer) => {
              verdict = checkHostKey(known, knownHostsFile, host, port, key);
              return verdict.ok;
            },
          });
        });
        return await execute(conn, command, req);
      } finally {
        conn.end();
      }
    },
  };
}

function connectFailure(
  err: Error & { level?: string },
  verdict: HostKeyVerdict | undefined,
  user: string,
  host: string,
  port: number,
  name: string,
) {
  if (verdict && !verdict.ok) {
    return fleetFailure(FleetFailure.HostKeyRejected, `refusing to connect to ${name}: ${verdict.message}`, {
      details: { kind: verdict.kind },
    });
  }
  if (err.level === 'client-authentication') {
    return fleetFailure(
      FleetFailure.BadConfig,
      `${user}@${host}:${port} (${name}) refused our SSH key: add its public half to the user's authorized_keys`,
    );
  }
  return fleetFailure(FleetFailure.HostUnreachable, `cannot reach ${name} over SSH (${host}:${port}): ${err.message}`, {
    retryable: true,
  });
}

function execute(conn: Client, command: string, req: ExecRequest): Promise<ExecOutcome> {
  const started = Date.now();
  return new Promise<ExecOutcome>((resolve, reject) => {
    conn.exec(command, (err, stream: ClientChannel) => {
      if (err) {
        reject(
          fleetFailure(FleetFailure.HostUnreachable, `SSH exec on ${req.host.name}: ${err.message}`, {
            retryable: true,
          }),
        );
        return;
      }
      fs.mkdirSync(path.dirname(req.logFile), { recursive: true });
      const log = fs.createWriteStream(req.logFile, { flags: 'a' });
      const tail = new Tail();
      const capture = req.captureBytes ? new Capture(req.captureBytes) : undefined;
      const onData = (buf: Buffer) => {
        log.write(buf);
        tail.push(buf);
      };
      stream.on('data', (buf: Buffer) => {
        onData(buf);
        capture?.push('stdout', buf);
      });
      stream.stderr.on('data', (buf: Buffer) => {
        onData(buf);
        capture?.push('stderr', buf);
      });
      let exitCode: number | null = null;
      let signal: string | null = null;
      let cancelled = false;
      let timedOut = false;
      let dropTimer: NodeJS.Timeout | undefined;
      const stop = () => {
        // EOF on the remote stdin: the wrapper's watchdog kills the script's process group.
        stream.end();
        dropTimer ??= setTimeout(() => conn.end(), STOP_GRACE_MS);
      };
      const onAbort = () => {
        cancelled = true;
        stop();
      };
      if (req.signal?.aborted) onAbort();
      req.signal?.addEventListener('abort', onAbort, { once: true });
      const timeout = req.timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            stop();
          }, req.timeoutMs)
        : undefined;
      const tick = setInterval(() => req.onTick?.(Date.now() - started), TICK_MS);
      stream.on('exit', (code: number | null, sig?: string) => {
        exitCode = typeof code === 'number' ? code : null;
        signal = sig ?? null;
      });
      stream.on('close', () => {
        clearInterval(tick);
        if (timeout) clearTimeout(timeout);
        if (dropTimer) clearTimeout(dropTimer);
        req.signal?.removeEventListener('abort', onAbort);
        log.end(() =>
          resolve({
            exitCode,
            signal: exitCode === null ? (signal ?? 'connection closed') : null,
            tail: tail.text(),
            durationMs: Date.now() - started,
            cancelled,
            timedOut,
            captured: capture?.result(),
          }),
        );
      });
    });
  });
}
