#!/usr/bin/env node
// `npm test` after bootstrap: jest, and beside it the static checks (typecheck, lint, format),
// which need no stack and would otherwise add their ~40 s in front of it. The checks run at a
// lower CPU priority (nice 10): jest is the long pole, they finish well within it. Their output
// is held back and printed in one block each when they end, so it never interleaves with jest's.
// Exits non-zero when any of them fails, after all have ended; a last line says how long each
// took. Arguments go to jest (`npm test -- test/unit`).
'use strict';

const { spawn } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const bin = (name) => path.join(ROOT, 'node_modules', '.bin', name);

const CHECKS = [
  { name: 'typecheck', command: bin('tsc'), args: ['--noEmit', '-p', '.'] },
  { name: 'lint', command: bin('eslint'), args: ['.'] },
  { name: 'format:check', command: bin('prettier'), args: ['--check', '.'] },
];

function run({ name, command, args, env }, o) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: o.quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    children.add(child);
    if (o.nice) {
      try {
        os.setPriority(child.pid, 10);
      } catch {
        /* not allowed here: run at normal priority */
      }
    }
    let out = '';
    if (o.quiet) {
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
    }
    child.once('error', (err) => {
      out += `${err.message}\n`;
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      const s = ((Date.now() - t0) / 1000).toFixed(0);
      if (o.quiet) {
        process.stdout.write(
          `\n> ${name} (${s} s): ${code === 0 ? 'passed' : `FAILED (${signal ?? `exit ${code}`})`}\n`,
        );
        if (code !== 0 || out.trim()) process.stdout.write(out.endsWith('\n') || !out ? out : `${out}\n`);
      }
      resolve({ name, ok: code === 0, seconds: s });
    });
  });
}

// Jest runs in lanes (test/setup/lanes-runner.ts): the stack-heavy files on CONVEYOR_TEST_BAND
// workers (default 3), each with a Temporal server and an AWS endpoint of its own, beside one pool
// worker for the unit, workflow and replay files. Three, measured on 2 cores (docs/benchmarks.md,
// Test suite, session 12): jest 674 s with two, 563 s with three, 553 s with four, each file slower
// as they share the machine. `CONVEYOR_TEST_BAND=1 npm test -- --runInBand`
// runs every file one after another in one process, as before.
const JEST_ENV = { ...process.env, CONVEYOR_TEST_BAND: process.env.CONVEYOR_TEST_BAND || '3' };

const children = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) c.kill(sig);
    process.exitCode = 1;
  });
}

const t0 = Date.now();
Promise.all([
  run({ name: 'jest', command: bin('jest'), args: process.argv.slice(2), env: JEST_ENV }, { quiet: false }),
  ...CHECKS.map((c) => run(c, { quiet: true, nice: true })),
]).then((results) => {
  const failed = results.filter((r) => !r.ok);
  const times = results.map((r) => `${r.name} ${r.seconds} s`).join(', ');
  process.stdout.write(
    `\nnpm test: ${failed.length === 0 ? 'passed' : `FAILED: ${failed.map((r) => r.name).join(', ')}`} ` +
      `in ${((Date.now() - t0) / 1000).toFixed(0)} s (${times})\n`,
  );
  process.exitCode = failed.length === 0 ? 0 : 1;
});
