// Where a process's Temporal connection settings come from, on the conventions every Temporal tool
// shares (@temporalio/envconfig): the TEMPORAL_* variables and the TOML profile file
// (TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml; profile TEMPORAL_PROFILE, else
// `default`). Workers, the API and the CLI all resolve through here, so they cannot disagree.
//
// Precedence, field by field, highest first:
//   1. TEMPORAL_* env of the process (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
//      TEMPORAL_TLS, TEMPORAL_TLS_*): shared/DESIGN.md's contract ("env wins"), which the local
//      stack relies on to point its processes at the ports of temporal-dev.yml;
//   2. what conveyor.yml sets explicitly (temporal.address, namespace, apiKeyEnv, tls);
//   3. the profile of the TOML file (temporal.profile, else TEMPORAL_PROFILE, else `default`);
//   4. the defaults: localhost:7233, namespace `default`, no TLS.
import {
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ClientConfigTLS,
  type ConfigDataSource,
} from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';

export type Env = Record<string, string | undefined>;

export const DEFAULT_TEMPORAL_ADDRESS = 'localhost:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/** Where a setting came from, for messages (`conveyor setup`, "unreachable at …"). */
export type TemporalSource = 'env' | 'conveyor.yml' | 'profile' | 'default';

/** The `temporal:` section of conveyor.yml as written (nothing filled in). */
export interface TemporalFileSettings {
  address?: string;
  namespace?: string;
  /** Profile of the TOML file to read; else TEMPORAL_PROFILE, else `default`. */
  profile?: string;
  apiKeyEnv?: string;
  tls?: { certFile?: string; keyFile?: string; caFile?: string; serverName?: string; disabled?: boolean };
}

export interface TemporalSettings {
  address: string;
  namespace: string;
  /** The profile read from the TOML file, when a file was found. */
  profile?: string;
  /** The file the profile came from, when one was read. */
  profileFile?: string;
  /** A secret: never log it. */
  apiKey?: string;
  tls?: ClientConfigTLS;
  grpcMeta?: Record<string, string>;
  sources: { address: TemporalSource; namespace: TemporalSource; apiKey?: TemporalSource; tls?: TemporalSource[] };
  /** conveyor.yml names an API key variable that is not set (refused when connecting). */
  apiKeyEnvMissing?: string;
}

type Layer = { source: TemporalSource; profile: ClientConfigProfile };

/** The settings of this process, from its env, conveyor.yml's `temporal:` and the profile file. */
export function resolveTemporalSettings(
  file: TemporalFileSettings,
  env: Env,
  /** Address and namespace already resolved (by loadConfig): connecting keeps them as they are. */
  resolved?: { address: string; namespace: string; sources?: Partial<TemporalSettings['sources']> },
): TemporalSettings {
  const envVars = definedOnly(env);
  // envconfig reads env and file together; read them apart so conveyor.yml can sit between.
  const fromEnv = loadClientConfigProfile({ disableFile: true, overrideEnvVars: envVars });
  const profileName = file.profile ?? envVars.TEMPORAL_PROFILE;
  const profileFile = envVars.TEMPORAL_CONFIG_FILE ?? defaultProfileFile(envVars);
  const fromProfile = loadClientConfigProfile({
    disableEnv: true,
    profile: file.profile,
    overrideEnvVars: envVars,
    configFileStrict: false,
  });
  const profileFound = Object.keys(fromProfile).length > 0;

  const apiKeyFromFile = file.apiKeyEnv ? envVars[file.apiKeyEnv] : undefined;
  const fromFile: ClientConfigProfile = {
    address: file.address,
    namespace: file.namespace,
    apiKey: apiKeyFromFile,
    tls: file.tls
      ? {
          disabled: file.tls.disabled,
          serverName: file.tls.serverName,
          clientCert: file.tls.certFile ? { path: file.tls.certFile } : undefined,
          clientKey: file.tls.keyFile ? { path: file.tls.keyFile } : undefined,
          serverCACert: file.tls.caFile ? { path: file.tls.caFile } : undefined,
        }
      : undefined,
  };
  const layers: Layer[] = [
    { source: 'env', profile: fromEnv },
    { source: 'conveyor.yml', profile: fromFile },
    { source: 'profile', profile: fromProfile },
  ];

  const address = resolved
    ? { value: resolved.address, source: resolved.sources?.address ?? ('conveyor.yml' as const) }
    : (first(layers, (p) => p.address) ?? { value: DEFAULT_TEMPORAL_ADDRESS, source: 'default' as const });
  const namespace = resolved
    ? { value: resolved.namespace, source: resolved.sources?.namespace ?? ('conveyor.yml' as const) }
    : (first(layers, (p) => p.namespace) ?? { value: DEFAULT_TEMPORAL_NAMESPACE, source: 'default' as const });
  // A profile's credentials belong to the server the profile names (localhost:7233 when it names
  // none): sent to another address they would leak a Cloud API key to, say, a local dev server.
  const credentialLayers = layers.filter(
    (l) => l.source !== 'profile' || (l.profile.address ?? DEFAULT_TEMPORAL_ADDRESS) === address.value,
  );
  const apiKey = first(credentialLayers, (p) => p.apiKey);
  const tls = mergeTls(credentialLayers);
  const profileMeta = credentialLayers.find((l) => l.source === 'profile')?.profile.grpcMeta;
  const grpcMeta = { ...(profileMeta ?? {}), ...(fromEnv.grpcMeta ?? {}) };

  return {
    address: address.value,
    namespace: namespace.value,
    ...(profileFound ? { profile: profileName ?? 'default', profileFile } : {}),
    ...(apiKey ? { apiKey: apiKey.value } : {}),
    ...(tls ? { tls: tls.value } : {}),
    ...(Object.keys(grpcMeta).length > 0 ? { grpcMeta } : {}),
    sources: {
      address: address.source,
      namespace: namespace.source,
      ...(apiKey ? { apiKey: apiKey.source } : {}),
      ...(tls ? { tls: tls.sources } : {}),
    },
    ...(file.apiKeyEnv && !apiKeyFromFile && apiKey?.source !== 'env' ? { apiKeyEnvMissing: file.apiKeyEnv } : {}),
  };
}

/** Connection options for `Connection`/`NativeConnection` (TLS on when configured or with an API key). */
export function temporalConnectionOptions(s: TemporalSettings): NativeConnectionOptions {
  if (s.apiKeyEnvMissing) throw new Error(`temporal.apiKeyEnv names ${s.apiKeyEnvMissing}, which is not set`);
  const { connectionOptions } = toClientOptions({
    address: s.address,
    namespace: s.namespace,
    apiKey: s.apiKey,
    tls: s.tls,
    grpcMeta: s.grpcMeta,
  });
  return connectionOptions;
}

/** `address 127.0.0.1:7233 (from TEMPORAL_ADDRESS), namespace default (default)`: never the key. */
export function describeTemporalSettings(s: TemporalSettings): string {
  const from = (src: TemporalSource, envName: string) =>
    src === 'env' ? `from ${envName}` : src === 'profile' ? `from profile ${s.profile}` : `from ${src}`;
  const parts = [
    `address ${s.address} (${from(s.sources.address, 'TEMPORAL_ADDRESS')})`,
    `namespace ${s.namespace} (${from(s.sources.namespace, 'TEMPORAL_NAMESPACE')})`,
  ];
  if (s.sources.apiKey) parts.push(`API key ${from(s.sources.apiKey, 'TEMPORAL_API_KEY')}`);
  if (s.tls && !s.tls.disabled) parts.push(`TLS from ${s.sources.tls?.join(' + ')}`);
  if (s.profileFile) parts.push(`profile file ${s.profileFile}`);
  return parts.join(', ');
}

function first<T>(layers: Layer[], get: (p: ClientConfigProfile) => T | undefined) {
  for (const l of layers) {
    const value = get(l.profile);
    if (value !== undefined && value !== '') return { value, source: l.source };
  }
  return undefined;
}

// Field by field, as envconfig merges env over a profile: TEMPORAL_TLS_SERVER_NAME alone keeps the
// certificate paths of conveyor.yml.
function mergeTls(layers: Layer[]): { value: ClientConfigTLS; sources: TemporalSource[] } | undefined {
  const value: ClientConfigTLS = {};
  const sources = new Set<TemporalSource>();
  for (const key of ['disabled', 'serverName', 'clientCert', 'clientKey', 'serverCACert'] as const) {
    const hit = first(layers, (p) => p.tls?.[key]);
    if (!hit) continue;
    (value as Record<string, boolean | string | ConfigDataSource>)[key] = hit.value;
    sources.add(hit.source);
  }
  // `tls = true` in a profile or TEMPORAL_TLS=true with nothing else still means TLS.
  const enabledSomewhere = layers.some((l) => l.profile.tls !== undefined);
  if (sources.size === 0 && !enabledSomewhere) return undefined;
  if (sources.size === 0) sources.add(layers.find((l) => l.profile.tls !== undefined)!.source);
  return { value, sources: [...sources] };
}

function definedOnly(env: Env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

// Mirrors envconfig's lookup, only to name the file in messages.
function defaultProfileFile(env: Record<string, string>): string | undefined {
  const base = env.XDG_CONFIG_HOME || (env.HOME ? `${env.HOME}/.config` : undefined);
  return base ? `${base}/temporalio/temporal.toml` : undefined;
}
