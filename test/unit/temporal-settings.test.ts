// Temporal connection settings on @temporalio/envconfig's conventions: TEMPORAL_* env > conveyor.yml >
// the TOML profile > defaults, field by field, with real profile files read by the real package, and
// one real connection made through a profile to the test stack's server.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../config/conveyor';
import {
  describeTemporalSettings,
  resolveTemporalSettings,
  temporalConnectionOptions,
} from '../../config/temporal-settings';
import { connectClient, temporalSettings } from '../../workers/temporal';
import { testTempDir } from '../helpers/temp';

const dir = testTempDir('conveyor-temporal-settings-');

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

const CA = file('ca.pem', '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n');
const CERT = file('client.pem', '-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n');
const KEY = file('client.key', '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n');

const PROFILES = file(
  'temporal.toml',
  `
[profile.default]
address = "profile-default.example:7233"
namespace = "from-profile"
api_key = "profile-key"

[profile.cloud]
address = "acme.a1b2c.tmprl.cloud:7233"
namespace = "acme.a1b2c"
api_key = "cloud-key"
[profile.cloud.tls]
server_name = "acme.a1b2c.tmprl.cloud"
[profile.cloud.grpc_meta]
x-team = "release"

[profile.mtls]
address = "temporal.internal:7233"
[profile.mtls.tls]
client_cert_path = "${CERT}"
client_key_path = "${KEY}"
server_ca_cert_path = "${CA}"
`,
);

const VALID = `
storage: { artifacts: s3://a-bucket, staging: s3://s-bucket, production: s3://p-bucket }
distros: { bookworm: { format: deb, codename: bookworm, arch: amd64 } }
repositories:
  - name: acme/widget
    cloneUrl: repos/widget.git
    branches: [{ match: main, channel: unstable }]
    steps: { unit: make test }
    distros: [bookworm]
`;

describe('Temporal settings (envconfig conventions)', () => {
  it('defaults to localhost:7233, namespace default, plaintext, with no env and no profile file', () => {
    const s = resolveTemporalSettings({}, {});
    expect(s).toEqual({
      address: 'localhost:7233',
      namespace: 'default',
      sources: { address: 'default', namespace: 'default' },
    });
    expect(temporalConnectionOptions(s)).toMatchObject({
      address: 'localhost:7233',
      tls: undefined,
      apiKey: undefined,
    });
  });

  it('reads the default profile of the file TEMPORAL_CONFIG_FILE names when nothing else sets a value', () => {
    const s = resolveTemporalSettings({}, { TEMPORAL_CONFIG_FILE: PROFILES });
    expect(s.address).toBe('profile-default.example:7233');
    expect(s.namespace).toBe('from-profile');
    expect(s.apiKey).toBe('profile-key');
    expect(s.sources).toEqual({ address: 'profile', namespace: 'profile', apiKey: 'profile' });
    // An API key turns TLS on, as every Temporal tool does.
    expect(temporalConnectionOptions(s)).toMatchObject({ apiKey: 'profile-key', tls: true });
    expect(describeTemporalSettings(s)).toBe(
      `address profile-default.example:7233 (from profile default), namespace from-profile (from profile default), ` +
        `API key from profile default, profile file ${PROFILES}`,
    );
  });

  it('finds the profile file at $XDG_CONFIG_HOME/temporalio/temporal.toml', () => {
    const xdg = testTempDir('conveyor-xdg-');
    fs.mkdirSync(path.join(xdg, 'temporalio'));
    fs.copyFileSync(PROFILES, path.join(xdg, 'temporalio', 'temporal.toml'));
    expect(resolveTemporalSettings({}, { XDG_CONFIG_HOME: xdg }).address).toBe('profile-default.example:7233');
    expect(resolveTemporalSettings({}, { HOME: xdg }).address).toBe('localhost:7233');
  });

  it('lets conveyor.yml win over the profile, and keeps the profile credentials away from another address', () => {
    const s = resolveTemporalSettings({ address: '127.0.0.1:7233' }, { TEMPORAL_CONFIG_FILE: PROFILES });
    expect(s.address).toBe('127.0.0.1:7233');
    expect(s.sources.address).toBe('conveyor.yml');
    // The namespace is not a credential: it still comes from the profile.
    expect(s.namespace).toBe('from-profile');
    expect(s.apiKey).toBeUndefined();
    expect(temporalConnectionOptions(s).tls).toBeUndefined();

    // Same address as the profile: its key applies.
    const same = resolveTemporalSettings(
      { address: 'profile-default.example:7233', namespace: 'yml-ns' },
      { TEMPORAL_CONFIG_FILE: PROFILES },
    );
    expect(same).toMatchObject({ namespace: 'yml-ns', apiKey: 'profile-key' });
    expect(same.sources).toEqual({ address: 'conveyor.yml', namespace: 'conveyor.yml', apiKey: 'profile' });
  });

  it('lets TEMPORAL_* env win over conveyor.yml and the profile', () => {
    const env = {
      TEMPORAL_CONFIG_FILE: PROFILES,
      TEMPORAL_ADDRESS: 'env.example:7233',
      TEMPORAL_NAMESPACE: 'env-ns',
      TEMPORAL_API_KEY: 'env-key',
      YML_KEY: 'yml-key',
    };
    const s = resolveTemporalSettings({ address: 'yml.example:7233', namespace: 'yml-ns', apiKeyEnv: 'YML_KEY' }, env);
    expect(s).toMatchObject({ address: 'env.example:7233', namespace: 'env-ns', apiKey: 'env-key' });
    expect(s.sources).toEqual({ address: 'env', namespace: 'env', apiKey: 'env' });

    // Without TEMPORAL_API_KEY the key comes from the variable conveyor.yml names.
    const withoutEnvKey: Record<string, string> = { ...env };
    delete withoutEnvKey.TEMPORAL_API_KEY;
    const y = resolveTemporalSettings({ address: 'yml.example:7233', apiKeyEnv: 'YML_KEY' }, withoutEnvKey);
    expect(y).toMatchObject({ apiKey: 'yml-key', sources: { apiKey: 'conveyor.yml' } });
  });

  it('selects the profile by conveyor.yml temporal.profile, else TEMPORAL_PROFILE', () => {
    const byEnv = resolveTemporalSettings({}, { TEMPORAL_CONFIG_FILE: PROFILES, TEMPORAL_PROFILE: 'cloud' });
    expect(byEnv).toMatchObject({
      address: 'acme.a1b2c.tmprl.cloud:7233',
      namespace: 'acme.a1b2c',
      apiKey: 'cloud-key',
      profile: 'cloud',
      grpcMeta: { 'x-team': 'release' },
    });
    expect(temporalConnectionOptions(byEnv)).toMatchObject({
      tls: { serverNameOverride: 'acme.a1b2c.tmprl.cloud' },
      metadata: { 'x-team': 'release' },
    });
    const byFile = resolveTemporalSettings(
      { profile: 'mtls' },
      { TEMPORAL_CONFIG_FILE: PROFILES, TEMPORAL_PROFILE: 'cloud' },
    );
    expect(byFile.address).toBe('temporal.internal:7233');
    const tls = temporalConnectionOptions(byFile).tls as {
      serverRootCACertificate: Uint8Array;
      clientCertPair: { crt: Uint8Array; key: Uint8Array };
    };
    expect(Buffer.from(tls.serverRootCACertificate).toString()).toBe(fs.readFileSync(CA, 'utf8'));
    expect(Buffer.from(tls.clientCertPair.key).toString()).toBe(fs.readFileSync(KEY, 'utf8'));
    expect(() => resolveTemporalSettings({ profile: 'nope' }, { TEMPORAL_CONFIG_FILE: PROFILES })).toThrow(
      "Profile 'nope' not found",
    );
  });

  it('merges TLS field by field: env server name over conveyor.yml certificate paths; TEMPORAL_TLS=false disables', () => {
    const yml = { address: 'temporal.internal:7233', tls: { certFile: CERT, keyFile: KEY, caFile: CA } };
    const s = resolveTemporalSettings(yml, { TEMPORAL_TLS_SERVER_NAME: 'frontend.internal' });
    expect(s.sources.tls).toEqual(['env', 'conveyor.yml']);
    const tls = temporalConnectionOptions(s).tls as { serverNameOverride: string; clientCertPair: { crt: Uint8Array } };
    expect(tls.serverNameOverride).toBe('frontend.internal');
    expect(Buffer.from(tls.clientCertPair.crt).toString()).toBe(fs.readFileSync(CERT, 'utf8'));
    expect(temporalConnectionOptions(resolveTemporalSettings(yml, { TEMPORAL_TLS: 'false' })).tls).toBe(false);
    // TEMPORAL_TLS=true alone: TLS with the system's roots.
    expect(temporalConnectionOptions(resolveTemporalSettings({}, { TEMPORAL_TLS: 'true' })).tls).toMatchObject({});
    expect(resolveTemporalSettings({}, { TEMPORAL_TLS: 'true' }).tls).toEqual({ disabled: false });
  });

  it('refuses to connect when temporal.apiKeyEnv names an unset variable', () => {
    const s = resolveTemporalSettings({ apiKeyEnv: 'MISSING_KEY' }, {});
    expect(() => temporalConnectionOptions(s)).toThrow('temporal.apiKeyEnv names MISSING_KEY, which is not set');
  });

  it('loadConfig resolves address and namespace by the same rules, and refuses a missing profile', () => {
    const cfgFile = file('conveyor.yml', `temporal: { profile: mtls, namespace: yml-ns }\n${VALID}`);
    const cfg = loadConfig(cfgFile, { TEMPORAL_CONFIG_FILE: PROFILES });
    expect(cfg.temporal).toMatchObject({
      address: 'temporal.internal:7233',
      namespace: 'yml-ns',
      sources: { address: 'profile', namespace: 'conveyor.yml' },
    });
    expect(loadConfig(cfgFile, { TEMPORAL_CONFIG_FILE: PROFILES, TEMPORAL_ADDRESS: 'e:1' }).temporal.address).toBe(
      'e:1',
    );
    // Connecting keeps what was loaded, whatever the connecting env says about the address.
    expect(temporalSettings(cfg, { TEMPORAL_CONFIG_FILE: PROFILES, TEMPORAL_ADDRESS: 'elsewhere:1' }).address).toBe(
      'temporal.internal:7233',
    );
    const bad = file('bad.yml', `temporal: { profile: nope }\n${VALID}`);
    expect(() => loadConfig(bad, { TEMPORAL_CONFIG_FILE: PROFILES })).toThrow(ConfigError);
    expect(() => loadConfig(bad, { TEMPORAL_CONFIG_FILE: PROFILES })).toThrow("temporal: Profile 'nope' not found");
  });

  it('connects to a real server through a profile file alone', async () => {
    const address = process.env.CONVEYOR_TEST_TEMPORAL;
    if (!address) throw new Error('CONVEYOR_TEST_TEMPORAL is not set: run through jest (test/setup/global-setup.ts)');
    const profiles = file('real.toml', `[profile.stack]\naddress = "${address}"\nnamespace = "default"\n`);
    const env = { TEMPORAL_CONFIG_FILE: profiles, TEMPORAL_PROFILE: 'stack' };
    const cfg = loadConfig(file('real.yml', VALID), env);
    expect(cfg.temporal.address).toBe(address);
    const client = await connectClient(cfg, env);
    try {
      const ns = await client.workflowService.describeNamespace({ namespace: 'default' });
      expect(ns.namespaceInfo?.name).toBe('default');
    } finally {
      await client.connection.close();
    }
    // The same file with a profile that points nowhere fails, naming where the address came from.
    const nowhere = file('nowhere.toml', `[profile.stack]\naddress = "127.0.0.1:1"\n`);
    const env2 = { TEMPORAL_CONFIG_FILE: nowhere, TEMPORAL_PROFILE: 'stack' };
    await expect(connectClient(loadConfig(file('real2.yml', VALID), env2), env2)).rejects.toThrow(
      /^Temporal server unreachable at 127\.0\.0\.1:1: .*\(address 127\.0\.0\.1:1 \(from profile stack\)/,
    );
  });
});
