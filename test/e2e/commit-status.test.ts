// Status back on GitHub: each stage reports conveyor/<stage> pending → success/failure with a link
// to the run, in order, to a local stand-in for api.github.com (the real one is not reachable here).
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { ConveyorConfig } from '../../config/conveyor';
import { abortSignal } from '../../workflows/messages';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github';
import {
  awsFor,
  clientFor,
  startWorkers,
  tempDir,
  testConfig,
  uid,
  waitForStatus,
  startSampleRun,
} from '../helpers/stack';

// A name of this test only: the branch-state entity of a name shared with another test file would
// run on that file's task queue, which nobody polls once it is done.
const REPO = `acme/status-${uid()}`;

describe('commit statuses', () => {
  let gh: FakeGithub;
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;

  beforeAll(async () => {
    gh = await startFakeGithub({ expectedToken: 'gh-test-token' });
    const dir = tempDir('statuses');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    config = testConfig([
      {
        name: REPO,
        cloneUrl: bare,
        steps: { unit: 'make test', integration: 'make integration', package: 'make package' },
        more: { packages: ['widget'] },
      },
    ]);
    config.github = { ...config.github, apiUrl: gh.url };
    process.env[config.github.tokenEnv] = 'gh-test-token';
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
  });
  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
    await gh?.close();
  });

  const start = (mutate?: (d: string) => void) =>
    startSampleRun(config, client, { repository: REPO, bare, work, message: 'status', mutate });

  const statusesFor = (sha: string, answered = 201) =>
    gh.requests
      .filter((r) => r.path === `/repos/${REPO}/statuses/${sha}` && r.status === answered)
      .map((r) => r.body as { state: string; context: string; target_url?: string; description: string });

  /** Each context's states in the order GitHub accepted them. */
  const byContext = (sha: string) => {
    const out = new Map<string, string[]>();
    for (const s of statusesFor(sha)) out.set(s.context, [...(out.get(s.context) ?? []), s.state]);
    return out;
  };
  const stageContexts = (result: { stages: { name: string; distro?: string }[] }) =>
    result.stages.map((s) => `conveyor/${s.name}${s.distro ? `/${s.distro}` : ''}`).sort();

  it('reports pending then success for every stage of a passing run, with the token and a link to the run', async () => {
    const { sha, workflowId } = await start();
    const result = (await client.workflow.getHandle(workflowId).result()) as {
      stages: { name: string; distro?: string }[];
    };
    const contexts = byContext(sha);
    expect([...contexts.keys()].sort()).toEqual(stageContexts(result));
    for (const [context, states] of contexts)
      expect({ context, states }).toEqual({ context, states: ['pending', 'success'] });
    const sent = statusesFor(sha);
    expect(
      sent.every(
        (s) => s.target_url === `http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(workflowId)}`,
      ),
    ).toBe(true);
    expect(gh.requests.filter((r) => r.path.endsWith(sha)).every((r) => r.tokenMatches)).toBe(true);
  });

  it('reports failure for a failing stage, and nothing more when the run is then aborted', async () => {
    const { sha, workflowId } = await start((d) => fs.writeFileSync(path.join(d, 'FAIL_UNIT'), 'yes\n'));
    await waitForStatus(client, workflowId, 'awaiting-operator');
    await client.workflow.getHandle(workflowId).signal(abortSignal, { reason: 'no good', by: 'test' });
    await client.workflow
      .getHandle(workflowId)
      .result()
      .catch(() => undefined);
    const sent = statusesFor(sha);
    expect(sent.map((s) => `${s.context}:${s.state}`)).toEqual(['conveyor/test:pending', 'conveyor/test:failure']);
    expect(sent[1].description).toBe('unit exited with code 2');
  });

  it('never fails a run when GitHub errors', async () => {
    gh.failNext(2, { kind: 'status', status: 500, message: 'boom' });
    const { workflowId } = await start();
    const result = (await client.workflow.getHandle(workflowId).result()) as { status: string };
    expect(result.status).toBe('succeeded');
  });

  it('retries rate-limited reports until GitHub takes them: every stage still ends success', async () => {
    gh.failNext(3, { kind: '429', retryAfterSeconds: 1 });
    const { sha, workflowId } = await start();
    const result = (await client.workflow.getHandle(workflowId).result()) as {
      status: string;
      stages: { name: string; distro?: string }[];
    };
    expect(result.status).toBe('succeeded');
    const limited = statusesFor(sha, 429);
    expect(limited).toHaveLength(3);
    // Each rate-limited report was sent again and accepted.
    const accepted = statusesFor(sha).map((s) => `${s.context}:${s.state}`);
    for (const l of limited) expect(accepted).toContain(`${l.context}:${l.state}`);
    const contexts = byContext(sha);
    expect([...contexts.keys()].sort()).toEqual(stageContexts(result));
    for (const [context, states] of contexts)
      expect({ context, final: states.at(-1) }).toEqual({ context, final: 'success' });
  });
});
