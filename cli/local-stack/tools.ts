// Paths of the tools bootstrap installs (scripts/bootstrap.js keeps these links current).
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

function tool(rel: string, what: string): string {
  const p = path.join(ROOT, rel);
  if (!fs.existsSync(p)) throw new Error(`${what} not found at ${p}: run \`npm run bootstrap\` first`);
  return p;
}

export const temporalBin = () => tool('.tools/bin/temporal', 'the Temporal CLI');
export const motoBin = () => tool('.tools/venv/bin/moto_server', 'moto server');
export const tsxBin = () => tool('node_modules/.bin/tsx', 'tsx');
