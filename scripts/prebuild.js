#!/usr/bin/env node
// Prebuilt entry points: the `conveyor` CLI, both workers, the API and the replay runner, each
// bundled by esbuild into one CommonJS file, so a process starts with plain `node FILE` instead of
// tsx compiling and resolving some hundred TypeScript files first. A cold `tsx cli/main.ts` costs
// seconds of CPU on 2 cores; the test suite starts such processes a few hundred times, so
// test/setup/global-setup.ts builds these once per run (about a second) and test/helpers/entry.ts
// starts them. Operators keep running the sources (bin/conveyor.js, npm run conveyor).
//
// Same code, not a second build of it: packages stay external (loaded from node_modules as under
// tsx, ESM-only ones through a real import()), and `__dirname`/`__filename` in our sources are
// replaced by each file's own source location, so every path built from them (the workflow code,
// the demo's sample project, the host-exec client) still names the source tree.
//
// The output directory must lie inside the checkout (e.g. under .tools/, which git, ESLint and
// Prettier ignore): Node resolves the external packages, import() included, from the bundle's path.
//
// Usage: node scripts/prebuild.js OUTDIR
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

/** Entry name → source file; OUTDIR/<name>.js is written for each. */
const ENTRIES = {
  cli: 'cli/main.ts',
  orchestrator: 'workers/orchestrator.ts',
  builder: 'workers/builder.ts',
  api: 'api/main.ts',
  'run-replay': 'test/replay/run-replay.ts',
};

/** esbuild plugin: `__dirname`/`__filename` of our own sources become their source locations. */
const sourceLocations = {
  name: 'source-locations',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = await fs.promises.readFile(args.path, 'utf8');
      return {
        loader: 'ts',
        contents: text
          .replace(/\b__dirname\b/g, JSON.stringify(path.dirname(args.path)))
          .replace(/\b__filename\b/g, JSON.stringify(args.path)),
      };
    });
  },
};

/** Builds every entry into `outDir` (inside the checkout); returns name → file. */
async function prebuild(outDir) {
  const out = path.resolve(outDir);
  const rel = path.relative(ROOT, out);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new Error(`prebuild: ${out} is outside ${ROOT}; the bundles resolve node_modules from where they lie`);
  }
  const esbuild = require('esbuild');
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, src]) => [name, path.join(ROOT, src)])),
    outdir: out,
    bundle: true,
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    format: 'cjs',
    packages: 'external',
    plugins: [sourceLocations],
    logLevel: 'warning',
  });
  return Object.fromEntries(Object.keys(ENTRIES).map((name) => [name, path.join(out, `${name}.js`)]));
}

module.exports = { prebuild, ENTRIES };

if (require.main === module) {
  const outDir = process.argv[2];
  if (!outDir) {
    process.stderr.write('usage: node scripts/prebuild.js OUTDIR (a directory inside the checkout)\n');
    process.exit(2);
  }
  const t0 = Date.now();
  prebuild(outDir).then(
    (files) => process.stdout.write(`prebuilt ${Object.values(files).join(', ')} in ${Date.now() - t0} ms\n`),
    (err) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
