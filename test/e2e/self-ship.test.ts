// Conveyor ships itself (issue 15 §5). The commit under test (this checkout's HEAD) is pushed to a
// bare repository and goes through the chain of conveyor.self.yml on real workers and the local
// stack: the package step (scripts/package-self.js, in the build sandbox with network for the npm
// registry) stages Conveyor with its production node_modules and the pinned Node, the built-in
// packager makes the .deb, publish signs it into the staging repository, deploy installs it on a
// Debian host with the host's own apt-get, smoke runs `conveyor --version` there and e2e runs the
// README's examples (`conveyor --version`, `--help`).
// The branch rule holds the run at its approval gate, so nothing goes to production; the test then
// runs the installed launcher itself and checks the package's files, units and configuration files.
//
// Replaced from conveyor.self.yml: `unit` (npm ci, the fast tests and the static checks: minutes
// of work `npm test` does anyway) by a check that VERSION and package.json agree, unless
// CONVEYOR_SELF_SHIP_UNIT=file (then the file's own unit step runs too, in the sandbox with the
// registry). Every other step, the packaging, sandbox and limits are the file's.
//
// One distro, Debian: the package step stages Conveyor and its Node with `npm ci` per distro (74 s
// for the deb, 101 s for the rpm on an idle machine), so an rpm distro would double the file's cost.
// What is particular to the rpm (the spec, `%config(noreplace)` of /etc, the payload compressor,
// `rpm -qc`) is tested by test/integration/packaging.test.ts on the same built-in packager, and an
// rpm host installs with dnf in chain.suite.ts and staging.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { parse } from 'yaml';
import { runChecked, runProcess } from '../../activities/exec/process';
import { hostCommand } from '../../activities/fleet/local-host';
import { decidePush } from '../../api/github-push';
import { startPipeline } from '../../api/start-pipeline';
import { pushPayload } from '../../cli/webhook-client';
import type { ConveyorConfig } from '../../config/conveyor';
import { rejectSignal } from '../../workflows/messages';
import { makeStagingHosts } from '../helpers/hosts';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, uid, waitForStatus } from '../helpers/stack';

const ROOT = path.resolve(__dirname, '..', '..');

describe('Conveyor ships itself: its own chain, up to a staging host', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let root: string;
  const REPO = `conveyor-${uid()}/conveyor`;
  const role = `self-${uid()}`;
  let sha: string;
  let bare: string;
  let version: string;

  beforeAll(async () => {
    const dir = tempDir('self-ship');
    const hostsDir = path.join(dir, 'hosts');
    bare = path.join(dir, 'conveyor.git');
    sha = (await runChecked('git', ['-C', ROOT, 'rev-parse', 'HEAD'])).trim();
    version = (await runChecked('git', ['-C', ROOT, 'show', `${sha}:VERSION`])).trim();
    await runChecked('git', ['init', '--quiet', '--bare', bare]);
    await runChecked('git', ['-C', ROOT, 'push', '--quiet', bare, `${sha}:refs/heads/main`]);

    const self = parse(fs.readFileSync(path.join(ROOT, 'conveyor.self.yml'), 'utf8')) as {
      repositories: Record<string, unknown>[];
    };
    const { steps, packages, packaging, sandbox, stepTimeoutSeconds } = self.repositories[0] as {
      steps: Record<string, string | { examples: string[] }>;
      [k: string]: unknown;
    };
    config = testConfig(
      [
        {
          name: REPO,
          cloneUrl: bare,
          // Held at the approval gate: staging only.
          branches: [{ match: 'main', channel: `self${uid()}`, approval: true }],
          steps:
            process.env.CONVEYOR_SELF_SHIP_UNIT === 'file'
              ? steps
              : { ...steps, unit: 'test "$(cat VERSION)" = "$(node -p "require(\'./package.json\').version")"' },
          more: {
            packages,
            packaging,
            sandbox,
            stepTimeoutSeconds,
            staging: { tags: { Environment: 'staging', Role: role }, batchSize: 1 },
          },
        },
      ],
      { fleet: { hostsDir } },
    );
    const aws = await awsFor(config);
    [root] = Object.values(
      await makeStagingHosts(aws.ec2, config, hostsDir, { Environment: 'staging', Role: role }, 'self'),
    );
    client = await clientFor(config);
    workers = await startWorkers(config);
  }, 600_000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  /** Runs `script` as root of the local host (as the fleet's local executor does). */
  const onHost = async (script: string) => {
    const cmd = hostCommand(root, script);
    const r = await runProcess(cmd.file, cmd.args, { env: cmd.env });
    if (r.exitCode !== 0) throw new Error(`host: ${script} exited ${r.exitCode}: ${r.tail}`);
    return r.output;
  };

  it('tests, packages, publishes and deploys Conveyor; the installed conveyor runs on the host', async () => {
    const d = decidePush(config, pushPayload({ repository: REPO, branch: 'main', sha }));
    if (d.action !== 'start') throw new Error(d.reason);
    const { workflowId } = await startPipeline(client, d.input, config.temporal.taskQueue);
    // Until it waits for someone, or ends: a failed stage shows at once, with its error.
    const status = await waitForStatus(
      client,
      workflowId,
      ['awaiting-approval', 'awaiting-operator', 'failed', 'succeeded', 'aborted'],
      1_200_000,
    );
    expect([status.status, status.stages.filter((s) => s.state === 'failed').map((s) => [s.name, s.error])]).toEqual([
      'awaiting-approval',
      [],
    ]);
    const stages = status.stages.map((s) => `${s.name} ${s.state}`);
    for (const stage of ['test', 'package', 'publish', 'deploy', 'verify'])
      expect(stages).toContain(`${stage} succeeded`);
    expect(stages.filter((s) => !s.endsWith(' succeeded'))).toEqual(['promote pending']);

    const seconds = (a?: string, b?: string) => (a && b ? ((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1) : '?');
    const sizes = await onHost('du -sm /opt/conveyor | cut -f1');
    process.stderr.write(
      `self-ship: ${status.stages.map((s) => `${s.name}${s.distro ? `/${s.distro}` : ''} ${seconds(s.startedAt, s.endedAt)} s`).join(', ')}; ` +
        `/opt/conveyor ${sizes.trim()} MB installed\n`,
    );

    // The deploy installed the build from the staging repository, with the host's own apt-get.
    expect((await onHost("dpkg-query -W -f '${Version}' conveyor")).trim()).toBe(status.version);
    expect(status.version).toBe(`${version}-${status.build}`);
    // The launcher, on the package's own Node (the host has none of its own).
    expect(await onHost('command -v node || echo "no node"')).toContain('no node');
    expect((await onHost('conveyor --version')).trim()).toBe(version);
    const help = await onHost('conveyor --help');
    expect(help).toContain('Usage: conveyor [options] [command]');
    expect(help).toContain('approve [options] <workflowId>');
    expect(await onHost('/opt/conveyor/node/bin/node --version')).toMatch(/^v24\./);
    // What the units start (their ExecStart, --help instead of serving): each loads its whole
    // module graph from the installed tree, the Temporal core bridge included.
    for (const entry of ['workers/orchestrator.ts', 'workers/builder.ts', 'api/main.ts']) {
      expect(
        await onHost(`cd /opt/conveyor && /opt/conveyor/node/bin/node --require tsx/cjs ${entry} --help`),
      ).toContain('--config');
    }
    expect(await onHost('ls /usr/lib/systemd/system/ | grep conveyor')).toBe(
      'conveyor-api.service\nconveyor-builder@.service\nconveyor-orchestrator.service\n',
    );
    expect(await onHost('stat -c "%a %n" /etc/conveyor/*.env')).toBe(
      '600 /etc/conveyor/api.env\n600 /etc/conveyor/builder.env\n600 /etc/conveyor/orchestrator.env\n',
    );
    // /etc/conveyor is configuration: an upgrade keeps an operator's edits.
    expect(
      (await onHost("dpkg-query -W -f '${Conffiles}' conveyor"))
        .trim()
        .split('\n')
        .map((l) => l.trim().split(' ')[0])
        .sort(),
    ).toEqual([
      '/etc/conveyor/api.env',
      '/etc/conveyor/builder.env',
      '/etc/conveyor/conveyor.yml',
      '/etc/conveyor/orchestrator.env',
    ]);

    await client.workflow.getHandle(workflowId).signal(rejectSignal, { by: 'self-ship test', reason: 'staging only' });
    expect(await client.workflow.getHandle(workflowId).result()).toMatchObject({ status: 'rejected' });
  }, 1_500_000);
});
