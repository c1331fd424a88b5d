// `npm run bench [name…] [--quick]`: runs the named benchmarks (all by default) one after the
// other, prints each one's table and a last line of figures, and writes one JSON per benchmark
// under bench/results/. Not part of `npm test`: these report figures, they assert nothing.
import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import {
  createContext,
  figuresLine,
  formatTable,
  installChildReaper,
  machine,
  type Benchmark,
  type BenchResult,
} from './harness';
import { overhead } from './overhead';
import { concurrency } from './concurrency';
import { intake } from './intake';
import { aptIndex } from './apt-index';
import { yumIndex } from './yum-index';
import { publish } from './publish';
import { replay } from './replay';

const ALL: Benchmark[] = [overhead, concurrency, intake, aptIndex, yumIndex, publish, replay];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(`usage: npm run bench -- [name…] [--quick]\n`);
    for (const b of ALL) console.log(`  ${b.name.padEnd(12)} ${b.describe}`);
    return;
  }
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !ALL.some((b) => b.name === n));
  if (unknown.length)
    throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; known: ${ALL.map((b) => b.name).join(', ')}`);
  const chosen = names.length ? ALL.filter((b) => names.includes(b.name)) : ALL;
  installChildReaper();
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
  });
  const resultsDir = path.join(__dirname, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const command = `npm run bench${args.length ? ' -- ' + args.join(' ') : ''}`;
  const lastLines: string[] = [];
  let failed = 0;
  const t0 = Date.now();
  for (const b of chosen) {
    const made = createContext(b.name, quick);
    const ctx = made.ctx;
    const started = new Date();
    let result: BenchResult | undefined;
    let error: string | undefined;
    try {
      ctx.log(`${b.describe}${quick ? ' (--quick)' : ''}`);
      result = await b.run(ctx);
    } catch (err) {
      error = (err as Error).stack ?? String(err);
      failed++;
    } finally {
      await made.close();
    }
    const seconds = Math.round((Date.now() - started.getTime()) / 100) / 10;
    console.log(`\n## ${b.name} (${seconds} s${quick ? ', --quick' : ''})\n`);
    if (result) {
      console.log(formatTable(result.rows));
      for (const n of result.notes) console.log(`- ${n}`);
      const line = figuresLine(b.name, result.figures);
      lastLines.push(line);
      console.log(`\n${line}`);
    } else {
      console.log(`FAILED: ${error}`);
      lastLines.push(`${b.name}: FAILED`);
    }
    const file = path.join(resultsDir, `${b.name}-${started.toISOString().replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(
      file,
      JSON.stringify(
        { name: b.name, quick, command, started, seconds, machine: machine(), ...result, error },
        null,
        2,
      ) + '\n',
    );
  }
  console.log(`\n# all (${Math.round((Date.now() - t0) / 1000)} s)\n${lastLines.join('\n')}`);
  // Every benchmark has stopped what it started; a client library's idle socket must not keep
  // the command waiting.
  process.exit(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
