// Fault scenario 2: the Temporal server stopped mid-run (SIGKILL, no shutdown) and started again
// on the same SQLite file and ports. Runs on a server of this file's own; the workers are
// separate processes under the local stack's supervisor, as `conveyor dev` runs them. Every run
// that was in flight completes, and each published version is in its index once.
// Sizes: RELIABILITY_PIPELINES (default 2), RELIABILITY_SERVER_DOWN_S (default 10).
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { startTemporalServer, type TemporalServerOptions } from '../../cli/local-stack/servers';
import { signalGroup, type Service } from '../../cli/local-stack/services';
import type { PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { statusQuery } from '../../workflows/messages';
import {
  awsFor,
  clientFor,
  ownServerOptions,
  startSampleRun,
  tempDir,
  testConfig,
  testEnv,
  uid,
} from '../helpers/stack';
import { debCounts, size, startWorkerProcesses, type WorkerProcesses } from './harness';

const PIPELINES = size('RELIABILITY_PIPELINES', 2);
const DOWN_S = size('RELIABILITY_SERVER_DOWN_S', 10);

describe('reliability: the Temporal server stops mid-run and starts again on the same database', () => {
  let server: Service;
  let options: TemporalServerOptions;
  let config: ConveyorConfig;
  let client: Client;
  let workers: WorkerProcesses;
  let dir: string;
  const repository = `acme/restart-${uid()}`;

  beforeAll(async () => {
    dir = tempDir('server-restart');
    options = await ownServerOptions(dir);
    server = await startTemporalServer(options);
    config = testConfig(
      [
        {
          name: repository,
          cloneUrl: path.join(dir, 'widget.git'),
          steps: { unit: 'make test', package: 'make package' },
          branches: Array.from({ length: PIPELINES }, (_, i) => ({ match: `line-${i}`, channel: `line-${i}` })),
          more: { packages: ['widget'] },
        },
      ],
      {
        temporal: {
          address: `127.0.0.1:${options.port}`,
          namespace: 'default',
          taskQueue: `conveyor-${uid()}`,
          uiUrl: 'http://127.0.0.1:8233',
        },
      },
    );
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkerProcesses(config, {}, dir);
  }, 180000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
    await server?.stop();
  });

  it(`completes ${PIPELINES} runs across a server stop of ${DOWN_S} s`, async () => {
    const runs: { id: string }[] = [];
    for (let i = 0; i < PIPELINES; i++) {
      const { workflowId } = await startSampleRun(config, client, {
        repository,
        bare: path.join(dir, 'widget.git'),
        work: path.join(dir, 'work'),
        branch: `line-${i}`,
        message: `line ${i}`,
      });
      runs.push({ id: workflowId });
    }
    // Stop it while the first run packages: stages in flight on both sides of the outage.
    const packaging = Date.now();
    for (;;) {
      const s = await client.workflow
        .getHandle(runs[0].id)
        .query(statusQuery)
        .catch(() => undefined);
      if (s?.stages.some((st) => st.name === 'package' && st.state === 'running')) break;
      if (Date.now() - packaging > 120000) throw new Error(`${runs[0].id} never reached package`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const stoppedAt = Date.now();
    signalGroup(server.child.pid, 'SIGKILL');
    await server.exited;
    await new Promise((r) => setTimeout(r, DOWN_S * 1000));
    server = await startTemporalServer(options);
    const upAt = Date.now();
    const results = (await Promise.all(runs.map((r) => client.workflow.getHandle(r.id).result()))) as PipelineResult[];
    const doneAt = Date.now();
    console.log(
      `server restart: ${PIPELINES} runs; server down ${((upAt - stoppedAt) / 1000).toFixed(1)} s (killed, then started ` +
        `again on ${options.dbFile}); all runs done ${((doneAt - upAt) / 1000).toFixed(1)} s after it was back; ` +
        `worker restarts: orchestrator ${workers.orchestrator.restarts}, builder ${workers.builder.restarts}` +
        (workers.lines.length ? `\n${workers.lines.join('\n')}` : ''),
    );
    expect(results.map((r) => r.status)).toEqual(runs.map(() => 'succeeded'));
    const bucket = `${testEnv().aws}/${parseS3Url(config.storage.staging).bucket}`;
    for (const r of results) {
      const repo = r.published!.repositories[0];
      const counts = await debCounts(`${bucket}/${repo.path}/dists/${repo.suite}/main/binary-amd64/Packages`);
      expect(counts.get(r.version!)).toBe(1);
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
    }
  }, 420000);
});
