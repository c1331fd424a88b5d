// `conveyor trigger` and `conveyor list` as subprocesses: a trigger starts the run a push of the
// branch head (or of the given commit) would start, and refuses what the webhook would ignore,
// with the reason; list filters the runs on their search attributes, quotes values safely and
// shows each run's status, stage and build.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { commitSample } from '../../cli/demo/sample-repo';
import type { RunRow } from '../../cli/commands/list';
import type { ConveyorConfig } from '../../config/conveyor';
import { abortSignal } from '../../workflows/messages';
import { conveyor, eventually } from '../helpers/cli';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, uid, waitForStatus } from '../helpers/stack';

describe('conveyor trigger and list', () => {
  const id = uid();
  const repo = `acme/list-${id}`;
  const pkgRepo = `acme/pkg-${id}`;
  const QUOTED = "o'brien";
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let bare: string;
  const commits: Record<string, string> = {};

  beforeAll(async () => {
    const dir = tempDir('cli-list');
    bare = path.join(dir, 'widget.git');
    const work = path.join(dir, 'work');
    const branches = [
      { match: 'main', channel: 'unstable' },
      { match: QUOTED, channel: 'unstable' },
      { match: 'release-*', channel: 'stable' },
    ];
    config = testConfig([
      { name: repo, cloneUrl: bare, branches, steps: { unit: 'true' } },
      { name: pkgRepo, cloneUrl: bare, steps: { unit: 'true', package: 'echo no packaging here; exit 4' } },
    ]);
    commits.first = (await commitSample(bare, work, { message: 'first' })).sha;
    commits.head = (await commitSample(bare, work, { message: 'second' })).sha;
    commits.quoted = (await commitSample(bare, work, { branch: QUOTED, message: 'quoted' })).sha;
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
  });

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const cli = (...args: string[]) => conveyor(config.file, args);
  const rows = async (...args: string[]) => {
    const r = await cli('list', '--json', ...args);
    if (r.code !== 0) throw new Error(`list failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as RunRow[];
  };

  it('refuses unknown repositories, unmonitored or missing branches and bad commits, saying why', async () => {
    const [unknown, unmonitored, missing, badSha] = await Promise.all([
      cli('trigger', 'acme/nope', 'main'),
      cli('trigger', repo, 'feature/x'),
      cli('trigger', repo, 'release-9'),
      cli('trigger', repo, 'main', '--sha', 'abc123'),
    ]);
    expect(unknown).toMatchObject({
      code: 1,
      stdout: '',
      stderr: `conveyor: unknown repository acme/nope: ${config.file} configures ${repo}, ${pkgRepo}\n`,
    });
    expect(unmonitored).toMatchObject({
      code: 1,
      stderr: `conveyor: branch feature/x of ${repo} is not monitored: no branch rule matches it (rules: main, ${QUOTED}, release-*)\n`,
    });
    expect(missing).toMatchObject({
      code: 1,
      stderr: `conveyor: branch release-9 does not exist in ${bare} (git ls-remote found no refs/heads/release-9)\n`,
    });
    expect(badSha).toMatchObject({ code: 1, stderr: 'conveyor: --sha: not a full 40-hex commit SHA: abc123\n' });
    expect(await client.workflow.count(`ConveyorRepository = '${repo}'`)).toMatchObject({ count: 0 });
  });

  it('starts the branch head, a given commit, and a branch with a quote in its name', async () => {
    const [head, older, quoted] = await Promise.all([
      cli('trigger', repo, 'main'),
      cli('trigger', repo, 'main', '--sha', commits.first.toUpperCase()),
      cli('trigger', repo, QUOTED),
    ]);
    expect(head).toMatchObject({ code: 0, stdout: `pipeline/${repo}/main/${commits.head}\n` });
    expect(older).toMatchObject({ code: 0, stdout: `pipeline/${repo}/main/${commits.first}\n` });
    expect(quoted).toMatchObject({ code: 0, stdout: `pipeline/${repo}/${QUOTED}/${commits.quoted}\n` });
    for (const r of [head, older, quoted]) {
      const result = (await client.workflow.getHandle(r.stdout.trim()).result()) as { status: string };
      expect(result.status).toBe('succeeded');
    }
    // The run's input is the webhook's: pusher and message from the trigger, the repository's rule.
    const desc = await client.workflow.getHandle(head.stdout.trim()).describe();
    expect(desc.memo).toMatchObject({ author: 'cli-tester', commitMessage: 'conveyor trigger by cli-tester' });
  });

  it('lists runs by repository, branch and status with stage and build, quoting values safely', async () => {
    const failing = (await cli('trigger', pkgRepo, 'main')).stdout.trim();
    await waitForStatus(client, failing, 'awaiting-operator');

    const all = await eventually('three runs of the repository', async () => {
      const r = await rows('--repo', repo);
      return r.length === 3 && r.every((x) => x.status === 'succeeded') ? r : undefined;
    });
    expect(all.map((r) => r.workflowId).sort()).toEqual(
      [
        `pipeline/${repo}/main/${commits.first}`,
        `pipeline/${repo}/main/${commits.head}`,
        `pipeline/${repo}/${QUOTED}/${commits.quoted}`,
      ].sort(),
    );
    expect(all[0]).toMatchObject({ status: 'succeeded', stage: 'test', build: null });

    const [main, quoted, injected, limited] = await Promise.all([
      rows('--repo', repo, '--branch', 'main'),
      rows('--repo', repo, '--branch', QUOTED),
      // A value that tries to end the literal stays one value.
      rows('--repo', repo, '--branch', "x' OR WorkflowType = 'pipeline"),
      rows('--repo', repo, '--limit', '1'),
    ]);
    expect(main.length).toBe(2);
    expect(quoted.map((r) => r.workflowId)).toEqual([`pipeline/${repo}/${QUOTED}/${commits.quoted}`]);
    expect(injected).toEqual([]);
    expect(limited.length).toBe(1);

    const waiting = await eventually('the failing run in the list', async () => {
      const r = await rows('--repo', pkgRepo, '--status', 'awaiting-operator');
      return r.length === 1 && r[0].build !== null ? r : undefined;
    });
    expect(waiting[0]).toMatchObject({ workflowId: failing, status: 'awaiting-operator', stage: 'package', build: 1 });

    const [table, none, badStatus, badLimit] = await Promise.all([
      cli('list', '--repo', pkgRepo, '--show-query'),
      cli('list', '--repo', pkgRepo, '--status', 'failed'),
      cli('list', '--status', 'broken'),
      cli('list', '--limit', '0'),
    ]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`query: WorkflowType = 'pipeline' AND ConveyorRepository = '${pkgRepo}'`);
    expect(lines[1]).toMatch(/^WORKFLOW ID\s+STATUS\s+STAGE\s+BUILD\s+STARTED \(UTC\)$/);
    expect(lines[2]).toMatch(
      new RegExp(`^${failing}\\s+awaiting-operator\\s+package\\s+1\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`),
    );
    expect(lines).toHaveLength(3);

    expect(none).toMatchObject({
      code: 0,
      stdout: `no pipeline runs match WorkflowType = 'pipeline' AND ConveyorRepository = '${pkgRepo}' AND ConveyorStatus = 'failed'\n`,
    });
    expect(badStatus).toMatchObject({ code: 1 });
    expect(badStatus.stderr).toContain('conveyor: --status: unknown status broken (one of queued, running, ');
    expect(badLimit).toMatchObject({ code: 1, stderr: 'conveyor: --limit: not a positive whole number: 0\n' });

    await client.workflow.getHandle(failing).signal(abortSignal, { reason: 'test done', by: 'tester' });
    await waitForStatus(client, failing, 'aborted');
  });
});
