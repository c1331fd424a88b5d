// GET /runs/<workflowId> with real workers: a pushed commit's pipeline answers its `status` query
// through the API as JSON, the same the CLI's `conveyor status` shows.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen, type Api } from '../../api/server';
import { commitSample } from '../../cli/demo/sample-repo';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { waitFor } from '../../cli/local-stack/services';
import type { PipelineStatus } from '../../common/types';
import type { ConveyorConfig } from '../../config/conveyor';
import { awsFor, clientFor, startWorkers, tempDir, testConfig } from '../helpers/stack';

const SECRET = 'api-runs-test-secret';

describe('GET /runs/<workflowId>', () => {
  let config: ConveyorConfig;
  let client: Client;
  let api: Api;
  let url: string;
  let statusUrl: string;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;

  beforeAll(async () => {
    const dir = tempDir('api-runs');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    config = testConfig([{ name: 'acme/widget', cloneUrl: bare, steps: { unit: 'make test' } }], {
      api: { spoolDir: path.join(dir, 'spool') },
    });
    await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
    api = createApi({ config, client, logger: pino({ level: 'silent' }), secret: SECRET });
    url = `http://127.0.0.1:${await listen(api.server, 0)}`;
    statusUrl = `http://127.0.0.1:${await listen(api.statusServer, 0)}`;
  });

  afterAll(async () => {
    await api?.close();
    await workers?.stop();
    await client?.connection.close();
  });

  it('answers the pipeline status query as JSON', async () => {
    const commit = await commitSample(bare, work, { message: 'status over http' });
    const res = await sendWebhook(
      url,
      SECRET,
      'push',
      pushPayload({ repository: 'acme/widget', branch: 'main', sha: commit.sha, before: commit.before }),
    );
    expect(res.status).toBe(202);
    const id = res.body.workflowId!;

    const status = await waitFor(
      'the test stage to show in the status',
      async () => {
        const r = await fetch(`${statusUrl}/runs/${id}`);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toBe('application/json');
        const s = (await r.json()) as PipelineStatus;
        return s.stages.some((st) => st.name === 'test') ? s : undefined;
      },
      { timeoutMs: 30000 },
    );
    expect(status).toMatchObject({ workflowId: id, repository: 'acme/widget', branch: 'main', sha: commit.sha });
    expect(typeof status.status).toBe('string');
    // The same answer the Temporal client gets for the query.
    const direct = await client.workflow.getHandle(id).query<PipelineStatus>('status');
    expect(direct.workflowId).toBe(id);

    // An encoded ID works too (a branch name with a slash arrives as %2F from some clients).
    expect((await fetch(`${statusUrl}/runs/${encodeURIComponent(id)}`)).status).toBe(200);
  });
});
