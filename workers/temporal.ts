// One place that turns config into Temporal connections, so the worker, the API and the CLI can
// never talk to different addresses or namespaces. Address and namespace were resolved when the
// config was loaded; TLS and the API key are resolved here, at connect time, from the same layers
// (TEMPORAL_* env > conveyor.yml > the TOML profile: config/temporal-settings.ts). Secrets come by
// reference (env var names, file paths, the profile file) and never appear in config or logs.
import { Client, Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import type { ConveyorConfig, Env } from '../config/conveyor';
import {
  describeTemporalSettings,
  resolveTemporalSettings,
  temporalConnectionOptions,
  type TemporalSettings,
} from '../config/temporal-settings';

/** This process's Temporal settings for `config` (address and namespace as loaded). */
export function temporalSettings(config: ConveyorConfig, env: Env = process.env): TemporalSettings {
  return resolveTemporalSettings(config.temporal, env, config.temporal);
}

function unreachable(s: TemporalSettings, err: unknown): Error {
  return new Error(
    `Temporal server unreachable at ${s.address}: ${(err as Error).message} (${describeTemporalSettings(s)})`,
  );
}

export async function connectClient(config: ConveyorConfig, env: Env = process.env): Promise<Client> {
  const settings = temporalSettings(config, env);
  const options = temporalConnectionOptions(settings);
  // Lazy, then connected by hand: a failed attempt closes its channel instead of leaking it (the
  // API reconnects in a loop during an outage).
  const connection = Connection.lazy({
    address: options.address,
    tls: options.tls,
    apiKey: options.apiKey,
    metadata: options.metadata,
    connectTimeout: '5 seconds',
  });
  try {
    await connection.ensureConnected();
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw unreachable(settings, err);
  }
  return new Client({ connection, namespace: settings.namespace });
}

export async function connectNative(config: ConveyorConfig, env: Env = process.env): Promise<NativeConnection> {
  const settings = temporalSettings(config, env);
  const options = temporalConnectionOptions(settings);
  // Imported here, not at the top: the CLI and the API connect clients only, and loading the
  // worker package (its native bridge) costs them ~120 ms of CPU per process
  // (test/unit/cli-startup.test.ts).
  const { NativeConnection } = await import('@temporalio/worker');
  try {
    return await NativeConnection.connect(options);
  } catch (err) {
    throw unreachable(settings, err);
  }
}
