// Paths of the tools bootstrap installs (scripts/bootstrap.js keeps these links current).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

function tool(rel: string, what: string): string {
  const p = path.join(ROOT, rel);
  if (!fs.existsSync(p)) throw new Error(`${what} not found at ${p}: run \`npm run bootstrap\` first`);
  return p;
}

export const temporalBin = () => tool('.tools/bin/temporal', 'the Temporal CLI');

/**
 * The Temporal CLI's version (`v1.9.1`, or `v1.5.1` where bootstrap fell back to `go install`),
 * from bootstrap's stamp beside the binary, else its `--version` (a go-installed build says 0.0.0-DEV).
 */
export function temporalCliVersion(bin = temporalBin()): string | undefined {
  const real = fs.realpathSync(bin);
  try {
    return fs.readFileSync(`${real}.version`, 'utf8').trim();
  } catch {
    /* no stamp: the binary came from PATH */
  }
  const out = spawnSync(real, ['--version'], { encoding: 'utf8' }).stdout ?? '';
  const m = /temporal version (\d+\.\d+\.\d+)/.exec(out);
  return m && m[1] !== '0.0.0' ? `v${m[1]}` : undefined;
}

/** True when the CLI is at least `major.minor` (unknown versions count as old). */
export function temporalCliAtLeast(major: number, minor: number, bin = temporalBin()): boolean {
  const m = /^v(\d+)\.(\d+)\./.exec(temporalCliVersion(bin) ?? '');
  return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}
export const motoBin = () => tool('.tools/venv/bin/moto_server', 'moto server');
export const versitygwBin = () => tool('.tools/bin/versitygw', 'versitygw (the local S3 server)');
export const tsxBin = () => tool('node_modules/.bin/tsx', 'tsx');
