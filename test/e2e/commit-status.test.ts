// Status back on GitHub: each stage reports conveyor/<stage> pending → success/failure with a link
// to the run, in order, to a local stand-in for api.github.com (the real one is not reachable here).
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { ConveyorConfig } from '../../config/conveyor';
import { abortSignal } from '../../workflows/messages';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, waitForStatus, startSampleRun } from '../helpers/stack';

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
      { name: 'acme/widget', cloneUrl: bare, steps: { unit: 'make test', integration: 'make integration' } },
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
    startSampleRun(config, client, { repository: 'acme/widget', bare, work, message: 'status', mutate });

  const statusesFor = (sha: string) =>
    gh.requests
      .filter((r) => r.path === `/repos/acme/widget/statuses/${sha}`)
      .map((r) => r.body as { state: string; context: string; target_url?: string; description: string });

  it('reports pending then success for a passing run, with the token and a link to the run', async () => {
    const { sha, workflowId } = await start();
    await client.workflow.getHandle(workflowId).result();
    const sent = statusesFor(sha);
    expect(sent.map((s) => `${s.context}:${s.state}`)).toEqual(['conveyor/test:pending', 'conveyor/test:success']);
    expect(sent[1].target_url).toBe(
      `http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(workflowId)}`,
    );
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

  it('never fails a run when GitHub rate-limits or errors', async () => {
    gh.failNext(2, { kind: 'status', status: 500, message: 'boom' });
    const { workflowId } = await start();
    const result = (await client.workflow.getHandle(workflowId).result()) as { status: string };
    expect(result.status).toBe('succeeded');
  });
});
