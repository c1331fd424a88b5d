// One place that turns config into Temporal connections, so the worker, the API and the CLI can
// never talk to different addresses or namespaces. TLS files and the API key come from config
// by reference (file path, env var name); the key itself never appears in config or logs.
import fs from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { ConveyorConfig, Env } from '../config/conveyor';

function tlsOf(config: ConveyorConfig, apiKey: string | undefined) {
  const t = config.temporal.tls;
  if (!t) return apiKey ? true : undefined;
  return {
    serverRootCACertificate: t.caFile ? fs.readFileSync(t.caFile) : undefined,
    clientCertPair:
      t.certFile && t.keyFile ? { crt: fs.readFileSync(t.certFile), key: fs.readFileSync(t.keyFile) } : undefined,
  };
}

function apiKeyOf(config: ConveyorConfig, env: Env): string | undefined {
  if (!config.temporal.apiKeyEnv) return undefined;
  const key = env[config.temporal.apiKeyEnv];
  if (!key) throw new Error(`temporal.apiKeyEnv names ${config.temporal.apiKeyEnv}, which is not set`);
  return key;
}

export async function connectClient(config: ConveyorConfig, env: Env = process.env): Promise<Client> {
  const apiKey = apiKeyOf(config, env);
  // Lazy, then connected by hand: a failed attempt closes its channel instead of leaking it (the
  // API reconnects in a loop during an outage).
  const connection = Connection.lazy({
    address: config.temporal.address,
    tls: tlsOf(config, apiKey),
    apiKey,
    connectTimeout: '5 seconds',
  });
  try {
    await connection.ensureConnected();
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw new Error(`Temporal server unreachable at ${config.temporal.address}: ${(err as Error).message}`);
  }
  return new Client({ connection, namespace: config.temporal.namespace });
}

export async function connectNative(config: ConveyorConfig, env: Env = process.env): Promise<NativeConnection> {
  const apiKey = apiKeyOf(config, env);
  try {
    return await NativeConnection.connect({ address: config.temporal.address, tls: tlsOf(config, apiKey), apiKey });
  } catch (err) {
    throw new Error(`Temporal server unreachable at ${config.temporal.address}: ${(err as Error).message}`);
  }
}
