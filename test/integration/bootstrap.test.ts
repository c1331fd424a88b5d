// Bootstrap on a machine where everything is present does nothing and says so.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

it('bootstrap is idempotent: a second run reports nothing to do', () => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'bootstrap.js')], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stderr).toMatch(/bootstrap: everything present, nothing to do \(\d+\.\d s\)/);
});
