// `conveyor workers` as a subprocess: the pollers of the orchestrator queue and of each
// build-<distro> queue with identity and last poll, the backlog of a queue nobody serves, and the
// sentence to act on; a run that needs the missing distro waits, and goes on once a worker comes.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { commitSample } from '../../cli/demo/sample-repo';
import type { QueueReport } from '../../cli/commands/workers';
import type { ConveyorConfig } from '../../config/conveyor';
import { conveyor, eventually } from '../helpers/cli';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, uid } from '../helpers/stack';

describe('conveyor workers', () => {
  const repo = `acme/workers-${uid()}`;
  let config: ConveyorConfig;
  let client: Client;
  let bare: string;
  const running: { stop(): Promise<void> }[] = [];

  beforeAll(async () => {
    const dir = tempDir('cli-workers');
    bare = path.join(dir, 'widget.git');
    // rpm first: the test stage runs on the repository's first distro, the one without a worker.
    config = testConfig(
      [{ name: repo, cloneUrl: bare, steps: { unit: 'true' } }],
      {},
      {
        rpm: { format: 'rpm', arch: 'x86_64' },
        deb: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
      },
    );
    await commitSample(bare, path.join(dir, 'work'), { message: 'workers' });
    await awsFor(config);
    client = await clientFor(config);
  });

  afterAll(async () => {
    for (const w of running) await w.stop();
    await client?.connection.close();
  });

  it('lists pollers and backlogs, names the distro nobody serves, and exits 1 until one does', async () => {
    const [rpmDistro, debDistro] = Object.keys(config.distros);
    // The orchestrator and a builder for deb only.
    running.push(await startWorkers({ ...config, distros: { [debDistro]: config.distros[debDistro] } }));

    const wf = (await conveyor(config.file, ['trigger', repo, 'main'])).stdout.trim();
    expect(wf).toMatch(new RegExp(`^pipeline/${repo}/main/[0-9a-f]{40}$`));

    const report = await eventually('the test step waiting on the rpm queue', async () => {
      const r = await conveyor(config.file, ['workers', '--json']);
      const reports = JSON.parse(r.stdout) as QueueReport[];
      const q = reports.find((x) => x.distro === rpmDistro);
      return q && q.kinds[0].backlog >= 1 ? { r, reports } : undefined;
    });
    expect(report.r.code).toBe(1);
    const byQueue = Object.fromEntries(report.reports.map((q) => [q.queue, q]));
    const orchestrator = byQueue[config.temporal.taskQueue];
    expect(orchestrator.role).toBe('orchestrator');
    expect(orchestrator.kinds.map((k) => k.type)).toEqual(['workflow', 'activity']);
    for (const k of orchestrator.kinds) {
      expect(k.pollers.length).toBeGreaterThanOrEqual(1);
      expect(k.pollers[0].identity).toMatch(new RegExp(`^${process.pid}@`));
      expect(Date.now() - Date.parse(k.pollers[0].lastAccessTime!)).toBeLessThan(120000);
    }
    expect(byQueue[`build-${debDistro}`].kinds[0].pollers.length).toBeGreaterThanOrEqual(1);
    expect(byQueue[`build-${rpmDistro}`]).toMatchObject({
      neededBy: [repo],
      kinds: [{ type: 'activity', pollers: [] }],
      problem: `no worker polls build-${rpmDistro}: runs needing ${rpmDistro} will wait`,
    });

    const text = await conveyor(config.file, ['workers']);
    expect(text.code).toBe(1);
    expect(text.stderr).toBe(`conveyor: no worker polls build-${rpmDistro}: runs needing ${rpmDistro} will wait\n`);
    const out = text.stdout;
    expect(out).toContain(`task queues of namespace default at ${config.temporal.address}`);
    expect(out).toMatch(new RegExp(`^${config.temporal.taskQueue}  \\(orchestrator: `, 'm'));
    expect(out).toMatch(/^ {2}workflow tasks: \d+ pollers?, backlog/m);
    expect(out).toMatch(new RegExp(`^ {4}${process.pid}@\\S+\\s+last poll [\\d.]+s ago \\(`, 'm'));
    expect(out).toContain(`build-${debDistro}  (build host for ${debDistro}: deb amd64; needed by ${repo})`);
    const rpmBlock = out.slice(out.indexOf(`build-${rpmDistro}  (`));
    expect(rpmBlock).toMatch(/^ {2}activity tasks: no poller, backlog [1-9]\d* tasks?, oldest [\d.]+s$/m);
    expect(rpmBlock).toContain(`  no worker polls build-${rpmDistro}: runs needing ${rpmDistro} will wait`);

    // The run waits for a build host of its distro; one comes, and it goes on.
    const status = await conveyor(config.file, ['status', wf, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'running', stage: 'test' });
    running.push(await startWorkers({ ...config, distros: { [rpmDistro]: config.distros[rpmDistro] } }));
    expect(((await client.workflow.getHandle(wf).result()) as { status: string }).status).toBe('succeeded');
    const healthy = await conveyor(config.file, ['workers']);
    expect(healthy).toMatchObject({ code: 0, stderr: '' });
    expect(healthy.stdout).not.toContain('no worker polls');
  });
});
