// A private copy of the local stack's two config files for tests that run `conveyor dev` and
// `conveyor demo` as a user does: free ports, the data dir under a temp dir, so a running
// `npm run dev` (its ports, its .dev/) is never touched.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort } from '../../cli/local-stack/services';
import { entry } from './entry';
import { tempDir } from './stack';

export const ROOT = path.resolve(__dirname, '..', '..');
export const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
export const CLI = path.join(ROOT, 'cli', 'main.ts');

/** The `conveyor` CLI as a user runs it; no webhook secret from the shell (the stack makes one).
 * The default timeout leaves room for a demo on a busy 2-core machine (its stack alone can take 2 min). */
export function conveyor(args: string[], timeoutMs = 600000, env: Record<string, string> = {}) {
  const cli = entry('cli', args);
  const r = spawnSync(cli.command, cli.args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, GITHUB_WEBHOOK_SECRET: '', ...env },
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

/**
 * temporal-dev.yml and conveyor.dev.yml copied into a temp dir: seven free ports (temporal port,
 * UI, HTTP, metrics, AWS, API, status), one staging host per distro, `dataDir` `<dir>/data`.
 */
export async function devStackFiles(name: string, o: { noWorkerMetrics?: boolean } = {}) {
  const dir = tempDir(name);
  const ports: number[] = [];
  for (let i = 0; i < 7; i++) ports.push(await freePort());
  const dev = parse(fs.readFileSync(path.join(ROOT, 'temporal-dev.yml'), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >;
  dev.temporal = {
    ...dev.temporal,
    port: ports[0],
    uiPort: ports[1],
    httpPort: ports[2],
    metricsPort: ports[3],
    dbFile: 'data/temporal.db',
  };
  dev.aws = { ...dev.aws, port: ports[4], hosts: { perDistro: 1, tags: { Environment: 'staging' } } };
  dev.api = { port: ports[5], statusPort: ports[6] };
  (dev as Record<string, unknown>).dataDir = 'data';
  // The default worker metrics ports (9464, 9465) may be a running `npm run dev`'s.
  if (o.noWorkerMetrics) (dev as Record<string, unknown>).metrics = {};
  const devFile = path.join(dir, 'temporal-dev.yml');
  fs.writeFileSync(devFile, stringify(dev));
  const configFile = path.join(dir, 'conveyor.dev.yml');
  fs.copyFileSync(path.join(ROOT, 'conveyor.dev.yml'), configFile);
  return { dir, ports, devFile, configFile };
}
