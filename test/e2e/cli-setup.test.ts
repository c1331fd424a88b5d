// `conveyor setup` against a Temporal dev server started without our search attributes (as any
// fresh cluster is): it registers the namespace and the attributes, a second run finds them all
// present, a conflicting type is reported (exit 1) and left alone, and on Temporal Cloud it only
// prints the console steps. The plain Temporal CLI checks what the server holds.
import fs from 'node:fs';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import { startTemporalServer } from '../../cli/local-stack/servers';
import type { Service } from '../../cli/local-stack/services';
import { conveyor, temporal } from '../helpers/cli';
import { ownServerOptions, tempDir, testConfig, uid } from '../helpers/stack';

describe('conveyor setup', () => {
  const dir = tempDir('cli-setup');
  let server: Service;
  let address: string;

  beforeAll(async () => {
    const options = await ownServerOptions(dir, { searchAttributes: {} });
    address = `127.0.0.1:${options.port}`;
    server = await startTemporalServer(options);
  });

  afterAll(async () => {
    await server?.stop();
  });

  function configFor(namespace: string, temporalExtra: Record<string, unknown> = {}): string {
    return testConfig([{ name: `acme/setup-${uid()}`, cloneUrl: '/nonexistent.git', steps: { unit: 'true' } }], {
      temporal: { address, namespace, ...temporalExtra },
    }).file;
  }

  async function attributes(namespace: string): Promise<Record<string, string>> {
    const r = await temporal([
      'operator',
      'search-attribute',
      'list',
      '--address',
      address,
      '--namespace',
      namespace,
      '-o',
      'json',
    ]);
    expect(r.stderr).toBe('');
    const parsed = JSON.parse(r.stdout) as { customAttributes?: Record<string, string> };
    return parsed.customAttributes ?? {};
  }

  it('registers a missing namespace and every search attribute, then finds them present', async () => {
    const namespace = `conveyor-setup-${uid()}`;
    const file = configFor(namespace);
    const first = await conveyor(file, ['setup', '--retention-days', '7']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(
      `Temporal: address ${address} (from conveyor.yml), namespace ${namespace} (from conveyor.yml)`,
    );
    expect(first.stdout).toContain(`namespace ${namespace}: created: retention 7 days`);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
      expect(first.stdout).toContain(`search attribute ${name} (${type}): created`);
    }

    // What the server now holds, as the plain Temporal CLI sees it.
    const held = await attributes(namespace);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
      expect(held[name]).toMatch(new RegExp(`^(INDEXED_VALUE_TYPE_)?${type}$`, 'i'));
    }
    const ns = await temporal([
      'operator',
      'namespace',
      'describe',
      '--address',
      address,
      '-n',
      namespace,
      '-o',
      'json',
    ]);
    expect(JSON.parse(ns.stdout)).toMatchObject({ config: { workflowExecutionRetentionTtl: '604800s' } });

    const second = await conveyor(file, ['setup', '--json']);
    expect(second.code).toBe(0);
    const items = JSON.parse(second.stdout) as { kind: string; name: string; outcome: string }[];
    expect(items).toHaveLength(1 + Object.keys(SEARCH_ATTRIBUTES).length);
    expect(items.every((i) => i.outcome === 'already present')).toBe(true);
    expect(items[0]).toMatchObject({ kind: 'namespace', name: namespace });
  });

  it('reports a search attribute of another type as a conflict and leaves it as it is', async () => {
    const namespace = `conveyor-conflict-${uid()}`;
    const create = await temporal(['operator', 'namespace', 'create', '--address', address, '-n', namespace]);
    expect(create.code).toBe(0);
    // The server's namespace cache needs a moment before operator calls find a new namespace.
    for (let i = 0; ; i++) {
      const r = await temporal([
        'operator',
        'search-attribute',
        'create',
        '--address',
        address,
        '--namespace',
        namespace,
        '--name',
        'ConveyorBuild',
        '--type',
        'Keyword',
      ]);
      if (r.code === 0) break;
      if (i > 40) throw new Error(`search-attribute create kept failing: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    const r = await conveyor(configFor(namespace), ['setup']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`namespace ${namespace}: already present`);
    expect(r.stdout).toContain(
      'search attribute ConveyorBuild (Int): type conflict: the namespace has ConveyorBuild as Keyword, Conveyor needs Int',
    );
    expect(r.stdout).toContain('search attribute ConveyorRepository (Keyword): created');
    expect((await attributes(namespace)).ConveyorBuild).toMatch(/keyword/i);
  });

  it('on Temporal Cloud prints the console steps and connects to nothing', async () => {
    const cloud = testConfig([{ name: `acme/setup-${uid()}`, cloneUrl: '/nonexistent.git', steps: { unit: 'true' } }], {
      temporal: { address: 'acme.a1b2c.tmprl.cloud:7233', namespace: 'acme.a1b2c' },
    }).file;
    const r = await conveyor(cloud, ['setup']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Temporal Cloud (address acme.a1b2c.tmprl.cloud:7233 (from conveyor.yml)');
    expect(r.stdout).toContain('Namespaces > acme.a1b2c > Custom Search Attributes');
    expect(r.stdout).toMatch(/^ +ConveyorBuild +Int$/m);

    // An API key means Cloud too, whatever the address (here the local server, which is left untouched).
    const namespace = `conveyor-apikey-${uid()}`;
    const withKey = await conveyor(configFor(namespace), ['setup'], { env: { TEMPORAL_API_KEY: 'k'.repeat(32) } });
    expect(withKey.code).toBe(0);
    expect(withKey.stdout).toContain('API key from TEMPORAL_API_KEY');
    const ns = await temporal(['operator', 'namespace', 'describe', '--address', address, '-n', namespace]);
    expect(ns.code).not.toBe(0);
  });

  it('refuses a bad --retention-days before connecting', async () => {
    const r = await conveyor(configFor('default'), ['setup', '--retention-days', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--retention-days must be a whole number of days, at least 1 (got 0)');
    expect(fs.existsSync(path.join(dir, 'temporal.db'))).toBe(true);
  });
});
