// `conveyor setup`: makes a Temporal cluster ready for Conveyor, once, from any machine that can
// reach it: the namespace (where the cluster lets a client register one) and the typed search
// attributes of common/search-attributes.ts, through the operator service. Idempotent: it compares
// what is there with what is needed and says, item by item, what it did. Temporal Cloud manages
// namespaces and search attributes in its console, so there it prints the steps instead.
import { isGrpcServiceError, type Client } from '@temporalio/client';
import { msNumberToTs } from '@temporalio/common/lib/time';
import { Command } from 'commander';
import { SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import { describeTemporalSettings, type TemporalSettings } from '../../config/temporal-settings';
import { connectClient, temporalSettings } from '../../workers/temporal';
import { commandConfig } from './context';

type AttributeType = (typeof SEARCH_ATTRIBUTES)[string];

// temporal.api.enums.v1.IndexedValueType. Numbers, because @temporalio/proto is not a dependency
// of ours, only of the SDK (as in workers.ts).
const INDEXED_VALUE_TYPE: Record<number, string> = {
  1: 'Text',
  2: 'Keyword',
  3: 'Int',
  4: 'Double',
  5: 'Bool',
  6: 'Datetime',
  7: 'KeywordList',
};
const TYPE_NUMBER: Record<AttributeType, number> = { Keyword: 2, Int: 3 };
// gRPC status codes (@grpc/grpc-js is the SDK's dependency, not ours).
const grpcStatus = {
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  UNIMPLEMENTED: 12,
  UNAUTHENTICATED: 16,
} as const;

export type SetupOutcome = 'created' | 'already present' | 'type conflict' | 'not allowed' | 'failed';

export interface SetupItem {
  kind: 'namespace' | 'search attribute';
  name: string;
  /** The type Conveyor needs (search attributes). */
  type?: string;
  outcome: SetupOutcome;
  /** What to do about a conflict or a refusal; what the server has. */
  detail?: string;
}

export interface SetupOptions {
  namespace: string;
  retentionDays: number;
  /** How long to wait for a namespace just registered to become usable (the server's namespace cache). */
  namespaceReadyTimeoutMs?: number;
}

/** True for Temporal Cloud: its namespaces and search attributes are managed in the Cloud console. */
export function isTemporalCloud(s: Pick<TemporalSettings, 'address' | 'apiKey'>): boolean {
  const host = s.address.replace(/:\d+$/, '').toLowerCase();
  return host.endsWith('.tmprl.cloud') || s.apiKey !== undefined;
}

export function cloudInstructions(s: TemporalSettings, retentionDays: number): string[] {
  const width = Math.max(...Object.keys(SEARCH_ATTRIBUTES).map((n) => n.length));
  return [
    `Temporal Cloud (${describeTemporalSettings(s)}): namespaces and search attributes are managed in the`,
    'Temporal Cloud console (https://cloud.temporal.io), not through this API. Do this once there:',
    `  1. Namespaces: make sure ${s.namespace} exists (Create Namespace otherwise), with a retention of at`,
    `     least ${retentionDays} days, and that the API keys or certificates of the workers, the API and the`,
    '     operators have access to it.',
    `  2. Namespaces > ${s.namespace} > Custom Search Attributes: add each of these (name, type):`,
    ...Object.entries(SEARCH_ATTRIBUTES).map(([name, type]) => `       ${name.padEnd(width)}  ${type}`),
    '     An attribute already there with another type cannot be changed: remove it first.',
    '  Then start the workers; `conveyor list` and the Web UI filter on these attributes.',
  ];
}

/** Registers what is missing and reports every item; never changes what is already there. */
export async function setupCluster(client: Client, o: SetupOptions): Promise<SetupItem[]> {
  const items: SetupItem[] = [await ensureNamespace(client, o)];
  if (items[0].outcome === 'not allowed' || items[0].outcome === 'failed') return items;
  const existing = await withNamespaceReady(o, () => listCustomAttributes(client, o.namespace));
  const missing: Record<string, number> = {};
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
    const have = existing.get(name);
    if (have === undefined) {
      missing[name] = TYPE_NUMBER[type];
      continue;
    }
    const haveType = INDEXED_VALUE_TYPE[have] ?? `type ${have}`;
    items.push(
      haveType === type
        ? { kind: 'search attribute', name, type, outcome: 'already present' }
        : {
            kind: 'search attribute',
            name,
            type,
            outcome: 'type conflict',
            detail:
              `the namespace has ${name} as ${haveType}, Conveyor needs ${type}; a type cannot be changed: ` +
              `remove it if nothing else uses it (temporal operator search-attribute remove --name ${name} ` +
              `--namespace ${o.namespace}), then run conveyor setup again`,
          },
    );
  }
  if (Object.keys(missing).length === 0) return items;
  try {
    await client.connection.operatorService.addSearchAttributes({
      namespace: o.namespace,
      searchAttributes: missing,
    });
    for (const name of Object.keys(missing)) {
      items.push({ kind: 'search attribute', name, type: SEARCH_ATTRIBUTES[name], outcome: 'created' });
    }
  } catch (err) {
    // Another `setup` may have added some between our list and our add: list again and tell apart.
    const after = await listCustomAttributes(client, o.namespace).catch(() => new Map<string, number>());
    for (const name of Object.keys(missing)) {
      const there = after.get(name) === missing[name];
      items.push({
        kind: 'search attribute',
        name,
        type: SEARCH_ATTRIBUTES[name],
        outcome: there ? 'already present' : refusal(err) ? 'not allowed' : 'failed',
        ...(there ? {} : { detail: message(err) }),
      });
    }
  }
  return items;
}

async function ensureNamespace(client: Client, o: SetupOptions): Promise<SetupItem> {
  const item = { kind: 'namespace' as const, name: o.namespace };
  try {
    await client.workflowService.describeNamespace({ namespace: o.namespace });
    return { ...item, outcome: 'already present' };
  } catch (err) {
    if (!(grpcCode(err) === grpcStatus.NOT_FOUND)) {
      return { ...item, outcome: refusal(err) ? 'not allowed' : 'failed', detail: message(err) };
    }
  }
  try {
    await client.workflowService.registerNamespace({
      namespace: o.namespace,
      description: 'Conveyor pipelines (registered by conveyor setup)',
      workflowExecutionRetentionPeriod: msNumberToTs(o.retentionDays * 86_400_000),
    });
    return { ...item, outcome: 'created', detail: `retention ${o.retentionDays} days` };
  } catch (err) {
    if (grpcCode(err) === grpcStatus.ALREADY_EXISTS) return { ...item, outcome: 'already present' };
    return {
      ...item,
      outcome: refusal(err) ? 'not allowed' : 'failed',
      detail: `${message(err)}; ask the cluster's operators to register namespace ${o.namespace}`,
    };
  }
}

async function listCustomAttributes(client: Client, namespace: string): Promise<Map<string, number>> {
  const res = await client.connection.operatorService.listSearchAttributes({ namespace });
  return new Map(Object.entries(res.customAttributes ?? {}).map(([k, v]) => [k, Number(v)]));
}

// A namespace just registered reaches the server's namespace cache within seconds; until then
// operator calls for it answer NOT_FOUND.
async function withNamespaceReady<T>(o: SetupOptions, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + (o.namespaceReadyTimeoutMs ?? 30000);
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(grpcCode(err) === grpcStatus.NOT_FOUND) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function grpcCode(err: unknown): number | undefined {
  return isGrpcServiceError(err) ? Number(err.code) : undefined;
}

function refusal(err: unknown): boolean {
  const code = grpcCode(err);
  return (
    code === grpcStatus.PERMISSION_DENIED || code === grpcStatus.UNAUTHENTICATED || code === grpcStatus.UNIMPLEMENTED
  );
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function renderSetup(items: SetupItem[]): string[] {
  return items.map((i) => {
    const what = i.kind === 'namespace' ? `namespace ${i.name}` : `search attribute ${i.name} (${i.type})`;
    return `${what}: ${i.outcome}${i.detail ? `: ${i.detail}` : ''}`;
  });
}

export function setupCommand(): Command {
  return new Command('setup')
    .summary('register the namespace and the search attributes on the Temporal cluster')
    .description(
      'make the Temporal cluster of the config ready for Conveyor, through its operator service: register the ' +
        'namespace if it is missing and the cluster allows it, and the search attributes ConveyorRepository, ' +
        'ConveyorBranch, ConveyorCommit, ConveyorStage, ConveyorStatus (Keyword) and ConveyorBuild (Int). Safe to ' +
        'run again: each item is reported as created, already present, type conflict or not allowed; exits 1 on a ' +
        'conflict or a refusal. On Temporal Cloud (an address ending in .tmprl.cloud, or an API key) it prints ' +
        'the steps to take in the Cloud console instead. The connection is the one the workers use: see conveyor --help',
    )
    .option('--retention-days <n>', 'retention of a namespace it registers', '30')
    .option('--json', 'print the items as JSON')
    .action(async (o: { retentionDays: string; json?: boolean }, cmd: Command) => {
      const retentionDays = Number(o.retentionDays);
      if (!Number.isInteger(retentionDays) || retentionDays < 1) {
        throw new Error(`--retention-days must be a whole number of days, at least 1 (got ${o.retentionDays})`);
      }
      const config = commandConfig(cmd);
      const settings = temporalSettings(config);
      if (isTemporalCloud(settings)) {
        console.log(cloudInstructions(settings, retentionDays).join('\n'));
        return;
      }
      const client = await connectClient(config);
      let items: SetupItem[];
      try {
        items = await setupCluster(client, { namespace: settings.namespace, retentionDays });
      } finally {
        await client.connection.close();
      }
      if (o.json) console.log(JSON.stringify(items, null, 2));
      else console.log([`Temporal: ${describeTemporalSettings(settings)}`, ...renderSetup(items)].join('\n'));
      if (items.some((i) => i.outcome !== 'created' && i.outcome !== 'already present')) process.exitCode = 1;
    });
}
