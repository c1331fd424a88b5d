// Observability end to end, with the workers as real processes (`tsx workers/orchestrator.ts`,
// `tsx workers/builder.ts`, each with --metrics-port) as an operator runs them, and the API's status
// listener in this process:
// - a run that waits at its approval gate is approved with `conveyor approve`, another whose unit
//   step fails is aborted with `conveyor abort`; `conveyor audit --json` lists both with who, when
//   and why, read from the bucket (not from the runs);
// - the approved run deploys to a local staging host (an upgrade), a third run's smoke check fails
//   there and the host is rolled back;
// - each Prometheus endpoint, scraped after the runs, has the SDK's own series and ours (the host
//   upgrade and rollback counters included), and every series the sample Grafana dashboard queries;
// - every log line is JSON; activity lines carry workflow ID, run ID, stage and distro; no secret
//   of the processes' environment appears in any line.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen, type Api } from '../../api/server';
import { freePort } from '../../cli/local-stack/services';
import { ROOT } from '../../cli/local-stack/tools';
import type { EntryName } from '../../scripts/prebuild';
import { entry } from '../helpers/entry';
import type { AuditEntry } from '../../common/audit';
import type { ConveyorConfig } from '../../config/conveyor';
import { abortSignal } from '../../workflows/messages';
import { sendWebhook } from '../../cli/webhook-client';
import { conveyor } from '../helpers/cli';
import { makeLocalHost, registerHosts } from '../helpers/hosts';
import { awsFor, clientFor, startSampleRun, tempDir, testConfig, testEnv, uid, waitForStatus } from '../helpers/stack';

const SECRET_NAME = 'CONVEYOR_OBS_TEST_API_KEY';
const SECRET = `obs-${crypto.randomBytes(12).toString('hex')}`;

interface Proc {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

function startProcess(name: EntryName, args: string[], env: NodeJS.ProcessEnv): Proc {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_') && k !== 'CONVEYOR_CONFIG'),
  );
  const e = entry(name, args);
  const child = spawn(e.command, e.args, {
    cwd: ROOT,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let rest = '';
  child.stdout.on('data', (d: Buffer) => {
    const parts = (rest + d.toString('utf8')).split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  });
  child.stderr.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString('utf8')}`));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, lines, exited };
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return res.text();
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The value of the first sample of `name` whose labels include every `labels` pair. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return undefined;
}

describe('observability: metrics per worker process, JSON logs with run context, audit trail', () => {
  let config: ConveyorConfig;
  let client: Client;
  let api: Api;
  let statusUrl: string;
  let apiUrl: string;
  let orchestrator: Proc;
  let builder: Proc;
  let orchestratorMetrics: string;
  let builderMetrics: string;
  let bare: string;
  let work: string;
  let approved: string;
  let aborted: string;
  let hostRoot: string;
  const startedAt = new Date();
  const role = `obs-${uid()}`;

  beforeAll(async () => {
    const dir = tempDir('observability');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    config = testConfig(
      [
        {
          name: 'acme/obs',
          cloneUrl: bare,
          steps: {
            unit: 'make test',
            integration: 'make integration',
            package: 'make package',
            smoke: 'widget --version && test ! -f /etc/conveyor-fail-smoke',
          },
          branches: [{ match: 'main', channel: 'unstable', approval: true }],
          more: { packages: ['widget'], staging: { tags: { Environment: 'staging', Role: role }, batchSize: 1 } },
        },
      ],
      { fleet: { hostsDir: path.join(dir, 'hosts') } },
    );
    const aws = await awsFor(config);
    const [distro] = Object.keys(config.distros);
    hostRoot = await makeLocalHost(path.join(dir, 'hosts'), `${distro}-obs`, 'deb');
    await registerHosts(aws.ec2, [
      {
        name: `${distro}-obs`,
        distro,
        executor: 'local',
        tags: { Environment: 'staging', Role: role },
        root: hostRoot,
      },
    ]);
    client = await clientFor(config);
    const [oPort, bPort] = [await freePort(), await freePort()];
    orchestratorMetrics = `http://127.0.0.1:${oPort}/metrics`;
    builderMetrics = `http://127.0.0.1:${bPort}/metrics`;
    const env = {
      CONVEYOR_WORKFLOW_BUNDLE: testEnv().bundle,
      CONVEYOR_LOG_PRETTY: '0',
      CONVEYOR_LOG_LEVEL: 'info',
      [SECRET_NAME]: SECRET,
    };
    orchestrator = startProcess('orchestrator', ['--config', config.file, '--metrics-port', String(oPort)], env);
    builder = startProcess('builder', ['--config', config.file, '--metrics-port', String(bPort)], env);
    for (const p of [orchestrator, builder]) {
      await until('a worker to start', () =>
        Promise.resolve(p.lines.some((l) => l.includes('worker started')) ? true : undefined),
      );
    }
    api = createApi({ config, client, logger: pino({ level: 'silent' }), secret: 'obs-webhook-secret' });
    statusUrl = `http://127.0.0.1:${await listen(api.statusServer, 0)}`;
    apiUrl = `http://127.0.0.1:${await listen(api.server, 0)}`;
  }, 180000);

  afterAll(async () => {
    await api?.close();
    for (const p of [orchestrator, builder]) {
      if (p && p.child.exitCode === null) {
        p.child.kill('SIGTERM');
        await p.exited;
      }
    }
    await client?.connection.close();
  });

  it('an approve and an abort are in the audit trail with by, when and why', async () => {
    const ok = await startSampleRun(config, client, { repository: 'acme/obs', bare, work, message: 'approve me' });
    approved = ok.workflowId;
    await waitForStatus(client, approved, 'awaiting-approval', 150000);
    const approve = await conveyor(config.file, ['approve', approved, '--by', 'alice', '--comment', 'ship it']);
    expect(approve.stderr).not.toMatch(/^conveyor:/m);
    expect(approve.code).toBe(0);
    expect((await client.workflow.getHandle(approved).result()) as { status: string }).toMatchObject({
      status: 'succeeded',
    });

    const bad = await startSampleRun(config, client, {
      repository: 'acme/obs',
      bare,
      work,
      message: 'broken',
      mutate: (d) => fs.writeFileSync(path.join(d, 'FAIL_UNIT'), 'yes\n'),
    });
    aborted = bad.workflowId;
    await waitForStatus(client, aborted, 'awaiting-operator', 120000);
    const abort = await conveyor(config.file, ['abort', aborted, '--by', 'bob', '--reason', 'broken commit']);
    expect(abort.code).toBe(0);
    await expect(client.workflow.getHandle(aborted).result()).rejects.toMatchObject({
      cause: { message: 'aborted by bob: broken commit' },
    });

    const listed = await conveyor(config.file, ['audit', '--since', '1h', '--json']);
    expect(listed.stderr).not.toMatch(/^conveyor:/m);
    expect(listed.code).toBe(0);
    const entries = listed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEntry);
    const a = entries.find((e) => e.action === 'approve' && e.target === approved);
    const b = entries.find((e) => e.action === 'abort' && e.target === aborted);
    expect(a).toMatchObject({ by: 'alice', why: 'ship it', accepted: true });
    expect(b).toMatchObject({ by: 'bob', why: 'broken commit', accepted: true });
    for (const e of [a!, b!]) {
      expect(Date.parse(e.at)).toBeGreaterThanOrEqual(startedAt.getTime() - 1000);
      expect(Date.parse(e.at)).toBeLessThanOrEqual(Date.now());
    }
    // Exactly once each, although the entry is written by an activity that may be retried.
    expect(entries.filter((e) => e.target === approved && e.action === 'approve')).toHaveLength(1);

    const text = await conveyor(config.file, ['audit', '--since', '1h']);
    expect(text.stdout).toMatch(new RegExp(`approve +by alice on ${approved}: ship it`));
    expect(text.stdout).toMatch(new RegExp(`abort +by bob on ${aborted}: broken commit`));
    // Nothing before the window.
    const future = await conveyor(config.file, ['audit', '--since', new Date(Date.now() + 3600e3).toISOString()]);
    expect(future.stdout).toMatch(/^no operator actions since/);
  }, 360000);

  it("each worker's endpoint serves the SDK's series and Conveyor's", async () => {
    // A build whose smoke check fails on the host: the host is rolled back to the approved version.
    fs.writeFileSync(path.join(hostRoot, 'etc/conveyor-fail-smoke'), 'x\n');
    const smoke = await startSampleRun(config, client, { repository: 'acme/obs', bare, work, message: 'smoke fails' });
    const failed = await waitForStatus(client, smoke.workflowId, 'awaiting-operator', 180000);
    expect(failed.stages.find((s) => s.state === 'failed')?.error).toMatch(/rolled back 1 host\(s\)/);
    await client.workflow.getHandle(smoke.workflowId).signal(abortSignal, { reason: 'smoke failed' });
    await client.workflow
      .getHandle(smoke.workflowId)
      .result()
      .catch(() => undefined);

    const o = await scrape(orchestratorMetrics);
    // The SDK's own: workflow task latencies, schedule-to-start, sticky cache.
    expect(o).toMatch(/^temporal_workflow_task_schedule_to_start_latency_bucket\{/m);
    expect(o).toMatch(/^temporal_workflow_task_execution_latency_bucket\{/m);
    expect(o).toMatch(/^temporal_sticky_cache_size\{/m);
    // Ours, from workflow code: runs by outcome, stage durations, lock waits, operator actions.
    expect(sample(o, 'conveyor_runs_total', { repository: 'acme/obs', outcome: 'succeeded' })).toBe(1);
    expect(sample(o, 'conveyor_runs_total', { repository: 'acme/obs', outcome: 'aborted' })).toBe(2);
    expect(sample(o, 'conveyor_stage_duration_seconds_count', { stage: 'test', outcome: 'failed' })).toBe(1);
    expect(sample(o, 'conveyor_stage_duration_seconds_count', { stage: 'publish', outcome: 'succeeded' })).toBe(2);
    expect(sample(o, 'conveyor_stage_duration_seconds_count', { stage: 'deploy', outcome: 'failed' })).toBe(1);
    // Both repository locks were waited for: the staging publish's and the production promote's.
    for (const workflowType of ['publishStage', 'promoteStage']) {
      expect(
        sample(o, 'conveyor_lock_wait_seconds_count', { lock: 'repo', outcome: 'granted', workflowType }),
      ).toBeGreaterThanOrEqual(1);
    }
    expect(sample(o, 'conveyor_operator_actions_total', { action: 'approve', accepted: 'true' })).toBe(1);
    // Ours, from activities: what the publishes wrote.
    expect(sample(o, 'conveyor_publish_objects_total', { environment: 'staging' })).toBeGreaterThan(3);
    expect(sample(o, 'conveyor_publish_bytes_total', { environment: 'production' })).toBeGreaterThan(1000);
    // Ours, from the fleet activities: the approved run's upgrade, then the failed one's upgrade and rollback.
    expect(sample(o, 'conveyor_host_upgrades_total', { outcome: 'changed' })).toBe(2);
    expect(sample(o, 'conveyor_host_rollbacks_total', { outcome: 'changed' })).toBe(1);

    const b = await scrape(builderMetrics);
    expect(b).toMatch(/^temporal_activity_execution_latency_bucket\{/m);
    expect(b).toMatch(/^temporal_activity_schedule_to_start_latency_bucket\{/m);

    // The API's own series on its status listener, as before (after one delivery: a ping).
    const ping = await sendWebhook(apiUrl, 'obs-webhook-secret', 'ping', { zen: 'Keep it logically awesome.' });
    expect(ping.status).toBeLessThan(300);
    const a = await scrape(`${statusUrl}/metrics`);
    expect(a).toMatch(/^conveyor_api_temporal_up 1$/m);

    // Every series the sample dashboard queries is served by one of the endpoints.
    const dashboard = fs.readFileSync(path.join(ROOT, 'docs', 'grafana-dashboard.json'), 'utf8');
    const queried = [...new Set(dashboard.match(/\b(?:conveyor|temporal)_[a-z_]+/g) ?? [])];
    expect(queried.length).toBeGreaterThan(10);
    const served = `${o}\n${b}\n${a}`;
    const missing = queried.filter((name) => !new RegExp(`^${name}[{ ]`, 'm').test(served));
    expect(missing).toEqual([]);
  });

  it('logs are JSON lines with workflow, run, stage and distro on activity lines, and no secret', () => {
    const all = [...orchestrator.lines, ...builder.lines].filter((l) => !l.startsWith('stderr: '));
    expect(all.length).toBeGreaterThan(5);
    const parsed = all.map((l) => JSON.parse(l) as Record<string, unknown>);
    const distro = Object.keys(config.distros)[0];
    const step = parsed.find((l) => l.msg === 'running step' && l.workflowId === `${aborted}/test`);
    expect(step).toMatchObject({ stage: 'test', distro, activityType: 'runStep' });
    expect(typeof step?.workflowRunId).toBe('string');
    const pkg = parsed.find((l) => l.msg === 'running package step' && String(l.workflowId).startsWith(approved));
    expect(pkg).toMatchObject({ stage: 'package', distro, workflowId: `${approved}/package/${distro}` });
    for (const l of [...orchestrator.lines, ...builder.lines]) expect(l).not.toContain(SECRET);
  });
});
