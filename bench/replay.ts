// 7. Replay. The recorded pipeline histories of test/replay/histories (read as data, not test
// code), replicated to N, replayed with Worker.runReplayHistories against one workflow bundle
// (built outside the timed part): histories per second.
import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { workflowsPath } from '../workers/create';
import { ms, r2, timed, type Benchmark } from './harness';

const HISTORIES = path.join(__dirname, '..', 'test', 'replay', 'histories');
const quiet = () => undefined;
export const quietLogger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };

export const replay: Benchmark = {
  name: 'replay',
  describe: 'replay N recorded pipeline histories with Worker.runReplayHistories: histories per second',
  async run(ctx) {
    const n = ctx.quick ? 200 : 1000;
    const files = fs
      .readdirSync(HISTORIES, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.json'))
      .map((f) => path.join(HISTORIES, f));
    const recorded = files.map((f) => {
      const { workflowId, history } = JSON.parse(fs.readFileSync(f, 'utf8')) as { workflowId: string; history: string };
      return { workflowId, history: temporal.api.history.v1.History.decode(Buffer.from(history, 'base64')) };
    });
    const events = recorded.map((r) => r.history.events?.length ?? 0);
    const b = await timed(() => bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: quietLogger }));
    ctx.log(`${recorded.length} recorded histories (${events.join(', ')} events); bundle in ${ms(b.ms)} ms`);
    const histories = Array.from({ length: n }, (_, i) => ({
      workflowId: recorded[i % recorded.length].workflowId,
      history: recorded[i % recorded.length].history,
    }));
    let failed = 0;
    const t = await timed(async () => {
      for await (const r of Worker.runReplayHistories(
        { workflowBundle: b.value, replayName: 'bench-replay' },
        histories,
      )) {
        if (r.error) failed++;
      }
    });
    const perSecond = n / (t.ms / 1000);
    const totalEvents = histories.reduce((a, h) => a + (h.history.events?.length ?? 0), 0);
    return {
      rows: [
        {
          measure: 'recorded histories (distinct)',
          value: recorded.length,
          unit: '',
          note: `pipelines and their stage children, ${Math.min(...events)}–${Math.max(...events)} events`,
        },
        { measure: 'histories replayed', value: n, unit: '', note: `${failed} failed` },
        { measure: 'replay time', value: ms(t.ms), unit: 'ms', note: 'one replay worker, bundle prebuilt' },
        { measure: 'histories per second', value: r2(perSecond), unit: '/s', note: '' },
        { measure: 'events per second', value: Math.round(totalEvents / (t.ms / 1000)), unit: '/s', note: '' },
        { measure: 'bundle build (not timed above)', value: ms(b.ms), unit: 'ms', note: '' },
      ],
      figures: { histories: n, failed, seconds: r2(t.ms / 1000), per_second: r2(perSecond) },
      notes: [],
    };
  },
};
