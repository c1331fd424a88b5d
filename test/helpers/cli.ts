// The real binaries as an operator runs them: `conveyor` (cli/main.ts, prebuilt: entry.ts) and the
// Temporal CLI, as subprocesses. Asynchronous on purpose: the tests' workers run in the jest process and must keep
// answering queries and polling while a command waits for them (execFileSync would freeze them).
import { execFile, type ChildProcess } from 'node:child_process';
import { ROOT, temporalBin } from '../../cli/local-stack/tools';
import { entry } from './entry';

export interface CliResult {
  /** The exit code; null when the command was killed (timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Running extends Promise<CliResult> {
  child: ChildProcess;
}

/** Env of a command: nothing from the developer's shell may point it elsewhere. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, USER: 'cli-tester', ...extra };
  // Every TEMPORAL_* setting (address, API key, TLS, profile file: config/temporal-settings.ts).
  for (const k of Object.keys(env).filter(
    (k) => k.startsWith('TEMPORAL_') || k === 'CONVEYOR_CONFIG' || k === 'INIT_CWD',
  )) {
    if (!(k in extra)) delete env[k];
  }
  return env;
}

function run(file: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv): Running {
  let child!: ChildProcess;
  const done = new Promise<CliResult>((resolve) => {
    child = execFile(
      file,
      args,
      { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
  return Object.assign(done, { child });
}

/** `conveyor --config <file> …args`. */
export function conveyor(
  configFile: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Running {
  const cli = entry('cli', ['--config', configFile, ...args]);
  return run(cli.command, cli.args, opts.timeoutMs ?? 60000, cleanEnv(opts.env));
}

/** The Temporal CLI built by bootstrap (.tools/bin/temporal). */
export function temporal(args: string[], opts: { timeoutMs?: number } = {}): Running {
  return run(temporalBin(), args, opts.timeoutMs ?? 30000, cleanEnv());
}

/** Polls `fn` until it returns a value other than undefined. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err : new Error(String(err));
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
