// The chain on a real Temporal cluster: the multi-service server on PostgreSQL with SQL visibility
// (test/helpers/cluster.ts), prepared by `conveyor setup` as an operator would. The suites below
// are imported so that they register here, after the cluster's address replaced the dev server's
// (CONVEYOR_TEST_TEMPORAL: every test config, client, worker process and `conveyor` command takes
// it from testConfig). They run here only: named *.suite.ts, not *.test.ts, so jest runs each once,
// on the cluster, instead of once per server (the dev server, which `npm run demo` uses, serves
// every other e2e file, the staging, release, API and CLI files among them):
//   - chain.suite.ts: a signed webhook → test → package → publish → promote, read back by apt-get and dnf;
//   - cli-operator.suite.ts: `conveyor watch/status/retry/abort/approve/reject` as subprocesses;
//   - cli-replay.suite.ts: `conveyor replay` of runs downloaded from this cluster;
//   - cli-trigger-list.suite.ts: `conveyor trigger` and `conveyor list` (search attributes, quoted values);
//   - many-builders.suite.ts: two builder processes for one distro both take steps, `conveyor workers`
//     lists both, a builder stopped with SIGTERM mid-step loses no run.
// Plus what only a cluster shows: `conveyor setup` found nothing registered, and Keyword values with
// `"` (which SQLite visibility handled) list exactly on PostgreSQL visibility.
// Missing server binaries fail the whole file (the cluster helper names the bootstrap step).
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { RunRow } from '../../cli/commands/list';
import { SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import type { PipelineResult } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { conveyor } from '../helpers/cli';
import { startCluster, type Cluster } from '../helpers/cluster';
import { awsFor, clientFor, startSampleRun, startWorkers, tempDir, testConfig, uid } from '../helpers/stack';
import './chain.suite';
import './cli-operator.suite';
import './cli-replay.suite';
import './cli-trigger-list.suite';
import './many-builders.suite';

// The imported suites keep their own explicit timeouts; the others get more room than the dev
// server's default, for a cluster sharing two cores with the rest of the suite.
jest.setTimeout(300000);

let cluster: Cluster;
const started = Date.now();

beforeAll(async () => {
  cluster = await startCluster(tempDir('cluster'));
  process.env.CONVEYOR_TEST_TEMPORAL = cluster.address;
  process.stdout.write(`cluster: PostgreSQL, schema and Temporal server ready in ${secondsSince(started)} s\n`);
}, 240000);

afterAll(async () => {
  process.stdout.write(`cluster: whole file ${secondsSince(started)} s\n`);
  await cluster?.stop();
});

function secondsSince(t: number): string {
  return ((Date.now() - t) / 1000).toFixed(1);
}

describe('a fresh cluster', () => {
  it('conveyor setup registered the namespace and every search attribute, and a second run finds them', async () => {
    expect(cluster.setup.stdout).toContain(`namespace ${cluster.namespace}: created: retention 1 days`);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
      expect(cluster.setup.stdout).toContain(`search attribute ${name} (${type}): created`);
    }
    const file = testConfig([
      { name: `acme/again-${uid()}`, cloneUrl: '/nonexistent.git', steps: { unit: 'true' } },
    ]).file;
    const again = await conveyor(file, ['setup', '--json']);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    const items = JSON.parse(again.stdout) as { kind: string; name: string; outcome: string }[];
    expect(items).toHaveLength(1 + Object.keys(SEARCH_ATTRIBUTES).length);
    expect(items.filter((i) => i.outcome !== 'already present')).toEqual([]);
  });
});

describe('search attributes on PostgreSQL visibility', () => {
  const repository = `acme/visible-${uid()}`;
  const QUOTED = 'say-"hi"';
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('cluster-visibility');
    config = testConfig([
      {
        name: repository,
        cloneUrl: path.join(dir, 'widget.git'),
        steps: { unit: 'true' },
        branches: [{ match: '*', channel: 'unstable' }],
      },
    ]);
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
  });

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  it('lists runs of branches whose names hold double quotes, exactly', async () => {
    const ids: Record<string, string> = {};
    for (const branch of ['main', QUOTED, `${QUOTED}-2`]) {
      const { workflowId } = await startSampleRun(config, client, {
        repository,
        bare: path.join(dir, 'widget.git'),
        work: path.join(dir, 'work'),
        branch,
        message: branch,
      });
      ids[branch] = workflowId;
      const result = (await client.workflow.getHandle(workflowId).result()) as PipelineResult;
      expect(result.status).toBe('succeeded');
    }
    const rows = async (...args: string[]) => {
      const r = await conveyor(config.file, ['list', '--json', '--repo', repository, ...args]);
      if (r.code !== 0) throw new Error(`list failed: ${r.stderr}`);
      return (JSON.parse(r.stdout) as RunRow[]).map((x) => x.workflowId);
    };
    // Visibility is eventually consistent: a closed run's row can lag its result.
    for (let i = 0; i < 50 && (await rows()).length < 3; i++) await new Promise((r) => setTimeout(r, 200));
    expect((await rows()).sort()).toEqual(Object.values(ids).sort());
    expect(await rows('--branch', QUOTED)).toEqual([ids[QUOTED]]);
    expect(await rows('--branch', `${QUOTED}-2`)).toEqual([ids[`${QUOTED}-2`]]);
    expect(await rows('--branch', 'say-"hi')).toEqual([]);
  });
});
