// 1. Orchestration overhead. The whole no-op chain for one commit (every step `true`, a tiny
// package from the built-in packager, 2 distros; with staging 2 local hosts per distro), from the
// signed webhook to the run's end. Per stage: wall time as the pipeline saw it (child started →
// closed), time inside its activities, time inside its commands (StepResult.durationMs), and
// overhead = wall − commands. Floor, measured in the same run on the same dev server, between
// the chains: a child workflow running one no-op activity.
import fs from 'node:fs';
import path from 'node:path';
import type { PipelineResult } from '../common/types';
import { DEV_DYNAMIC_CONFIG } from '../cli/local-stack/servers';
import { startChainStack } from './chain-stack';
import { startFloor } from './floor';
import { median, ms, type Benchmark, type Row } from './harness';
import { activitySpans, childSpans, eventMs, historyOf, unionMs } from './history';

interface StageSample {
  wall: number;
  activities: number;
  commands: number;
  byType: Record<string, number>;
}

export const overhead: Benchmark = {
  name: 'overhead',
  describe: 'orchestration overhead of the no-op chain per stage, against a child-with-one-activity floor',
  async run(ctx) {
    const staging = !ctx.quick;
    const chains = ctx.quick ? 2 : 4;
    const stack = await startChainStack(ctx, { staging });
    const floor = await startFloor(ctx, stack.temporal.address, stack.client);
    // Warm-up, not counted: first worker tasks, first bundle use, first connections.
    for (let i = 0; i < 3; i++) await floor.childWithOneActivity();
    {
      const w = await stack.push('warmup', 'warm-up', '0.0.1');
      await stack.client.workflow.getHandle(w.workflowId).result();
    }
    const floors: number[] = [];
    const totals: number[] = [];
    const webhook: number[] = [];
    const stages = new Map<string, StageSample[]>();
    /** The last chain's timeline: each stage and its activities, ms from the webhook's answer. */
    let timeline: string[] = [];
    for (let i = 0; i < chains; i++) {
      for (let k = 0; k < 5; k++) floors.push(await floor.childWithOneActivity());
      const t0 = performance.now();
      const { workflowId, webhookMs } = await stack.push('main', `no-op ${i}`, '1.0.0');
      const result = (await stack.client.workflow.getHandle(workflowId).result()) as PipelineResult;
      const total = performance.now() - t0;
      if (result.status !== 'succeeded') throw new Error(`${workflowId} ended ${result.status}`);
      totals.push(total);
      webhook.push(webhookMs);
      const pipeline = await historyOf(stack.client, workflowId);
      const zero = eventMs(pipeline[0]);
      const at = (t: number) => ms(t - zero);
      timeline = [`pipeline: started 0, closed ${at(eventMs(pipeline[pipeline.length - 1]))}`];
      const histories: Record<string, unknown[]> = { [workflowId]: pipeline };
      for (const span of childSpans(pipeline)) {
        const label = span.workflowId.slice(workflowId.length + 1).replace(/#\d+$/, '');
        const events = await historyOf(stack.client, span.workflowId);
        histories[span.workflowId] = events;
        const acts = activitySpans(events);
        timeline.push(
          `${label}: ${at(span.startMs)}–${at(span.endMs)}: ` +
            acts.map((a) => `${a.type} ${at(a.startMs)}–${at(a.endMs)}`).join(', '),
        );
        const byType: Record<string, number> = {};
        for (const a of acts) byType[a.type] = (byType[a.type] ?? 0) + (a.endMs - a.startMs);
        const sample: StageSample = {
          wall: span.endMs - span.startMs,
          activities: unionMs(acts.map((a) => [a.startMs, a.endMs])),
          commands: unionMs(
            acts.filter((a) => a.commandMs !== undefined).map((a) => [a.endMs - a.commandMs!, a.endMs]),
          ),
          byType,
        };
        stages.set(label, [...(stages.get(label) ?? []), sample]);
      }
      ctx.log(`chain ${i + 1}/${chains}: ${ms(total)} ms (${workflowId})`);
      // With CONVEYOR_BENCH_KEEP, the last chain's histories stay in the run dir to be read event by event.
      if (process.env.CONVEYOR_BENCH_KEEP && i === chains - 1)
        fs.writeFileSync(path.join(ctx.dir, 'last-chain-histories.json'), JSON.stringify(histories));
    }
    for (const line of timeline) ctx.log(`last chain, ms from the pipeline's start: ${line}`);
    const floorMs = median(floors);
    const rows: Row[] = [];
    const overheads: number[] = [];
    const outside: number[] = [];
    for (const [label, samples] of stages) {
      const wall = median(samples.map((s) => s.wall));
      const commands = median(samples.map((s) => s.commands));
      const over = median(samples.map((s) => s.wall - s.commands));
      overheads.push(over);
      outside.push(median(samples.map((s) => s.wall - s.activities)));
      const types = [...new Set(samples.flatMap((s) => Object.keys(s.byType)))];
      rows.push({
        stage: label,
        'wall ms': ms(wall),
        'in activities ms': ms(median(samples.map((s) => s.activities))),
        'in commands ms': ms(commands),
        'overhead ms': ms(over),
        'above floor ms': ms(over - floorMs),
        'outside activities ms': ms(median(samples.map((s) => s.wall - s.activities))),
        'activity time by type (ms, summed)': types
          .map((t) => `${t} ${ms(median(samples.map((s) => s.byType[t] ?? 0)))}`)
          .join(', '),
      });
    }
    const medOver = median(overheads);
    rows.push({ stage: 'floor: child + 1 no-op activity', 'wall ms': ms(floorMs), 'overhead ms': ms(floorMs) });
    rows.push({
      stage: 'whole chain: webhook → run complete',
      'wall ms': ms(median(totals)),
      'activity time by type (ms, summed)': `webhook answered in ${ms(median(webhook))} ms; ${chains} chains, medians`,
    });
    return {
      rows,
      figures: {
        staging: staging ? '2x2-hosts' : 'none',
        server_config: process.env.BENCH_DYNAMIC_CONFIG?.trim() || 'local-stack',
        chain_ms: ms(median(totals)),
        floor_ms: ms(floorMs),
        median_stage_overhead_ms: ms(medOver),
        above_floor_ms: ms(medOver - floorMs),
        median_outside_activities_ms: ms(median(outside)),
        outside_above_floor_ms: ms(median(outside) - floorMs),
      },
      notes: [
        'wall = child started → closed in the pipeline history; commands = StepResult.durationMs (test steps); ' +
          'package/deploy/verify run their commands inside activities that do not report a command time, so their ' +
          '"in activities" column bounds what is not orchestration; "outside activities" = wall − activity time, ' +
          'the orchestration proper, compared with the floor (whose one activity is a no-op)',
        ...(staging ? [] : ['--quick: the repository has no staging hosts (no deploy, verify)']),
        `the dev server's dynamic config: ${process.env.BENCH_DYNAMIC_CONFIG?.trim() || `the local stack's (${DEV_DYNAMIC_CONFIG.join(' ')})`}; BENCH_DYNAMIC_CONFIG=server for its own defaults`,
        `the last chain, ms from the pipeline's start: ${timeline.join('; ')}`,
      ],
    };
  },
};
