// Every example payload GitHub documents (the @octokit/webhooks-examples package: each event with
// its examples, event names such as projects_v2_item included), signed and POSTed to one API as
// GitHub would send it: all must be answered 2xx, and none may start a run, since none of their
// repositories is configured. An organisation hook receives all of these; a 4xx or 5xx for any of
// them shows as a failed delivery on GitHub.
import crypto from 'node:crypto';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen, type Api } from '../../api/server';
import { sendWebhook } from '../../cli/webhook-client';
import type { ConveyorConfig } from '../../config/conveyor';
import { clientFor, tempDir, testConfig } from '../helpers/stack';

const SECRET = 'api-github-examples-secret';
const REPO = 'acme/widget';
const CONCURRENCY = 8;

interface Definition {
  name: string;
  examples: Record<string, unknown>[];
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const definitions = require('@octokit/webhooks-examples') as Definition[];

describe("GitHub's documented webhook examples", () => {
  let config: ConveyorConfig;
  let client: Client;
  let api: Api;
  let url: string;

  beforeAll(async () => {
    config = testConfig([{ name: REPO, cloneUrl: '/nonexistent/widget.git', steps: { unit: 'true' } }], {
      api: { spoolDir: tempDir('api-examples-spool') },
    });
    client = await clientFor(config);
    api = createApi({ config, client, logger: pino({ level: 'silent' }), secret: SECRET });
    url = `http://127.0.0.1:${await listen(api.server, 0)}`;
  });

  afterAll(async () => {
    await api?.close();
    await client?.connection.close();
  });

  it('every example, signed, is answered 2xx and none starts a run', async () => {
    const deliveries = definitions.flatMap((d) => d.examples.map((payload, i) => ({ event: d.name, i, payload })));
    const repositories = new Set(
      deliveries.map((d) => (d.payload.repository as { full_name?: string } | undefined)?.full_name).filter(Boolean),
    );
    expect(repositories.has(REPO)).toBe(false);
    expect(deliveries.length).toBeGreaterThan(300);
    expect(deliveries.some((d) => /\d/.test(d.event))).toBe(true); // projects_v2_item

    const t0 = Date.now();
    const answers: { event: string; i: number; status: number; body: unknown }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < deliveries.length) {
          const d = deliveries[next++];
          const res = await sendWebhook(url, SECRET, d.event, d.payload, crypto.randomUUID());
          answers.push({ event: d.event, i: d.i, status: res.status, body: res.body });
        }
      }),
    );
    const byStatus = new Map<number, number>();
    for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
    // eslint-disable-next-line no-console -- the figures belong in the test output
    console.log(
      `${answers.length} example deliveries of ${definitions.length} events in ${Date.now() - t0} ms: ` +
        [...byStatus].map(([status, n]) => `${n} × ${status}`).join(', '),
    );

    const refused = answers.filter((a) => a.status < 200 || a.status > 299);
    expect(refused).toEqual([]);
    expect(answers).toHaveLength(deliveries.length);
    for (const a of answers) {
      expect(['ignored', 'pong']).toContain((a.body as { status?: string }).status);
    }

    // Nothing started: the API's own counter and the server agree.
    const metrics = api.metrics.render();
    expect(metrics).toMatch(/^conveyor_api_runs_started_total\{source="webhook"\} 0$/m);
    expect(metrics).not.toMatch(/outcome="(started|queued|existing|failed|bad_request)"/);
    expect(api.spool.depth()).toBe(0);
    const { count } = await client.workflow.count(`TaskQueue = "${config.temporal.taskQueue}"`);
    expect(count).toBe(0);
  });
});
