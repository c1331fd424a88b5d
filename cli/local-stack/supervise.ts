// A restarting service: what systemd's `Restart=on-failure` with `RestartSec=` does for the
// production units, for the local stack's workers and API (and the reliability suite's worker
// processes). When the process exits without being asked to, it is started again after a backoff
// that doubles from `minBackoffMs` up to `maxBackoffMs` and falls back to the minimum once a
// process has stayed up for `resetAfterMs`; every exit and restart is logged. `stop()` ends the
// supervision first, then the current process, so a stop never races a restart.
import type { Service } from './services';

export interface SuperviseOptions {
  minBackoffMs?: number;
  maxBackoffMs?: number;
  resetAfterMs?: number;
}

export interface Supervised extends Service {
  /** How many times the process was started again after it died. */
  readonly restarts: number;
  /** Resolves when the process has been started again `n` times in all. */
  restarted(n: number): Promise<void>;
}

export function supervise(
  start: () => Service | Promise<Service>,
  first: Service,
  log: (line: string) => void,
  o: SuperviseOptions = {},
): Supervised {
  const minMs = o.minBackoffMs ?? 1000;
  const maxMs = o.maxBackoffMs ?? 30000;
  const resetMs = o.resetAfterMs ?? 60000;
  let current = first;
  let startedAt = Date.now();
  let backoff = minMs;
  let restarts = 0;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let waiters: { n: number; resolve(): void }[] = [];
  let finished!: (code: number | null) => void;
  const ended = new Promise<number | null>((resolve) => (finished = resolve));

  const watch = (svc: Service) => {
    void svc.exited.then((code) => {
      if (stopping || svc !== current) return;
      if (Date.now() - startedAt >= resetMs) backoff = minMs;
      const how = svc.child.signalCode ? `signal ${svc.child.signalCode}` : `code ${code}`;
      log(`${svc.name} exited with ${how}; restarting in ${backoff} ms (see ${svc.logFile})`);
      timer = setTimeout(() => void restart(), backoff);
      backoff = Math.min(backoff * 2, maxMs);
    });
  };

  const restart = async () => {
    timer = undefined;
    if (stopping) return;
    try {
      const svc = await start();
      if (stopping) {
        await svc.stop();
        return;
      }
      current = svc;
      startedAt = Date.now();
      restarts++;
      log(`${svc.name} restarted (pid ${svc.child.pid}, restart ${restarts})`);
      watch(svc);
      waiters = waiters.filter((w) => (w.n <= restarts ? (w.resolve(), false) : true));
    } catch (err) {
      log(`${current.name} failed to start again: ${(err as Error).message}; retrying in ${backoff} ms`);
      timer = setTimeout(() => void restart(), backoff);
      backoff = Math.min(backoff * 2, maxMs);
    }
  };

  watch(first);
  return {
    get name() {
      return current.name;
    },
    get child() {
      return current.child;
    },
    get logFile() {
      return current.logFile;
    },
    // The supervised service ends only when stopped.
    exited: ended,
    get restarts() {
      return restarts;
    },
    restarted(n: number) {
      if (restarts >= n) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push({ n, resolve }));
    },
    async stop(graceMs?: number) {
      stopping = true;
      if (timer) clearTimeout(timer);
      await current.stop(graceMs);
      finished(current.child.exitCode);
    },
  };
}
