// What a CLI or API process loads before it does anything: the worker package (webpack, the
// native bridge) and the EC2 and SSM SDKs are loaded on first use only (workers/temporal.ts,
// workers/runtime.ts, activities/storage/s3.ts, cli/commands/replay.ts), so `conveyor --help`,
// the operator commands and the API start without them. The prebuilt CLI runs with a preload that
// lists, at exit, every module it loaded; the API, a server, is read for what it imports before
// it runs (esbuild's import graph of api/main.ts: a dynamic import() is loaded on first use).
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { runProcess } from '../../activities/exec/process';
import { entry } from '../helpers/entry';
import { tempDir } from '../helpers/stack';

const LAZY = ['@temporalio/worker', '@aws-sdk/client-ec2', '@aws-sdk/client-ssm'];

describe('CLI start', () => {
  it('loads neither the worker package nor the EC2 and SSM SDKs for --help or a config refusal', async () => {
    const dir = tempDir('cli-startup');
    const preload = path.join(dir, 'loaded.js');
    fs.writeFileSync(
      preload,
      "process.on('exit', () => require('node:fs').writeFileSync(process.env.LOADED_OUT, Object.keys(require.cache).join('\\n')));\n",
    );
    const bad = path.join(dir, 'conveyor.yml');
    fs.writeFileSync(bad, 'repositories: 7\n');
    for (const [name, args] of [
      ['help', ['--help']],
      ['refusal', ['--config', bad, 'list']],
    ] as const) {
      const out = path.join(dir, `${name}.txt`);
      const cli = entry('cli', [...args]);
      const r = await runProcess(cli.command, ['--require', preload, ...cli.args], {
        env: { ...process.env, LOADED_OUT: out },
      });
      expect([name, r.exitCode]).toEqual([name, name === 'help' ? 0 : 1]);
      const loaded = fs.readFileSync(out, 'utf8').split('\n');
      // The check itself: the client package is loaded by both.
      expect(loaded.some((m) => m.includes(`${path.sep}@temporalio${path.sep}client${path.sep}`))).toBe(true);
      for (const pkg of LAZY) {
        expect([
          name,
          pkg,
          loaded.filter((m) => m.includes(`${path.sep}node_modules${path.sep}${pkg}${path.sep}`)),
        ]).toEqual([name, pkg, []]);
      }
    }
  });

  it('the API imports the worker package nowhere but on first use', async () => {
    const graph = await build({
      entryPoints: [path.join(__dirname, '..', '..', 'api', 'main.ts')],
      bundle: true,
      platform: 'node',
      packages: 'external',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const imports = Object.entries(graph.metafile.inputs).flatMap(([file, input]) =>
      input.imports.filter((i) => i.external).map((i) => ({ file, path: i.path, kind: i.kind })),
    );
    // The check itself: the API does import the client package, and the worker's on first use.
    expect(imports).toContainEqual({
      file: 'workers/temporal.ts',
      path: '@temporalio/client',
      kind: 'import-statement',
    });
    expect(imports).toContainEqual({ file: 'workers/temporal.ts', path: '@temporalio/worker', kind: 'dynamic-import' });
    expect(imports.filter((i) => LAZY.includes(i.path) && i.kind !== 'dynamic-import')).toEqual([]);
  });
});
