// The fault suite's parts: worker processes as production runs them (one process per role, each
// restarted by the local stack's supervisor when it dies), a proxy in front of the S3 endpoint
// that can go down or report each write as it lands, a scan of histories and logs for secrets,
// and counts read from workflow histories. Sizes come from env vars with small defaults, so CI
// runs quickly and a person can run the same scenario larger by hand.
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { processEnv } from '../../cli/local-stack/process-env';
import { signalGroup, spawnService, waitFor } from '../../cli/local-stack/services';
import { supervise, type Supervised } from '../../cli/local-stack/supervise';
import { ROOT } from '../../cli/local-stack/tools';
import { buildQueue } from '../../common/queues';
import type { ConveyorConfig } from '../../config/conveyor';
import { entry } from '../helpers/entry';
import { testEnv } from '../helpers/stack';

const EventType = temporal.api.enums.v1.EventType;

/** A size of a scenario: env var `name` when set (a person running it larger), else `small`. */
export function size(name: string, small: number): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : small;
}

/** A small seeded PRNG (mulberry32): kill moments differ per seed, and a failing seed can be rerun. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkerProcesses {
  orchestrator: Supervised;
  /** The first builder process. */
  builder: Supervised;
  /** Every builder process (`builders` of startWorkerProcesses, default 1). */
  builders: Supervised[];
  /** What the supervisor said (exits, restarts). */
  lines: string[];
  /** SIGKILL to the role's whole process group (node and the steps it started). */
  kill(role: 'orchestrator' | 'builder'): void;
  logFiles: string[];
  stop(): Promise<void>;
}

/**
 * The orchestrator and builder workers of `config` as separate processes under the supervisor of
 * `conveyor dev` (restart with backoff), each with only its own secrets (process-env.ts). `env`:
 * the secret values by env var name, as an operator's environment would hold them.
 */
export async function startWorkerProcesses(
  config: ConveyorConfig,
  env: Record<string, string>,
  dir: string,
  o: { builders?: number } = {},
): Promise<WorkerProcesses> {
  const lines: string[] = [];
  const base = { ...process.env, ...env, CONVEYOR_CONFIG: config.file, CONVEYOR_WORKFLOW_BUNDLE: testEnv().bundle };
  const logFiles: string[] = [];
  const role = (name: 'orchestrator' | 'builder', n = 1) => {
    const label = n > 1 ? `${name}-${n}` : name;
    const logFile = path.join(dir, `${label}.log`);
    logFiles.push(logFile);
    const { command, args } = entry(name);
    const start = () => spawnService(label, command, args, { env: processEnv(name, config, base), logFile, cwd: ROOT });
    return supervise(start, start(), (l) => lines.push(`${new Date().toISOString()} ${l}`), {
      minBackoffMs: 500,
      maxBackoffMs: 4000,
    });
  };
  const orchestrator = role('orchestrator');
  const builders = Array.from({ length: o.builders ?? 1 }, (_, i) => role('builder', i + 1));
  const procs: WorkerProcesses = {
    orchestrator,
    builder: builders[0],
    builders,
    lines,
    logFiles,
    kill: (r) => signalGroup(procs[r].child.pid, 'SIGKILL'),
    async stop() {
      await Promise.all([orchestrator, ...builders].map((w) => w.stop(5000)));
    },
  };
  await waitForPollers(config, procs);
  return procs;
}

async function waitForPollers(config: ConveyorConfig, procs: WorkerProcesses): Promise<void> {
  const { clientFor } = await import('../helpers/stack');
  const client = await clientFor(config);
  try {
    const queues: [string, number, Supervised][] = [
      [config.temporal.taskQueue, 1, procs.orchestrator],
      ...Object.keys(config.distros).map((d): [string, number, Supervised] => [buildQueue(d), 2, procs.builder]),
    ];
    for (const [name, taskQueueType, service] of queues) {
      await waitFor(
        `a worker polling ${name}`,
        async () =>
          ((
            await client.workflowService.describeTaskQueue({
              namespace: config.temporal.namespace,
              taskQueue: { name },
              taskQueueType,
            })
          ).pollers?.length ?? 0) > 0,
        { service, timeoutMs: 120000, intervalMs: 300 },
      );
    }
  } finally {
    await client.connection.close();
  }
}

export interface FaultProxy {
  url: string;
  /** Write requests (PUT, POST, DELETE) answered so far. */
  writes: number;
  /**
   * Called when a write's answer came back from the endpoint, before the client gets it: the
   * write has landed, and whatever this does (kill the writer) happens between two writes.
   */
  afterWrite?: (w: { method: string; path: string; n: number }) => void | Promise<void>;
  /** Refuses connections (the listener is closed, open ones are cut) for `ms`, then listens again. */
  down(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** An HTTP proxy on a free port in front of `upstream` (the S3 endpoint), for outages and crash points. */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const out = http.request(
      {
        host: up.hostname,
        port: up.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        const write = req.method === 'PUT' || req.method === 'POST' || req.method === 'DELETE';
        const pass = () => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        };
        if (!write) return pass();
        proxy.writes++;
        const hook = proxy.afterWrite;
        if (!hook) return pass();
        void Promise.resolve(hook({ method: req.method!, path: req.url ?? '', n: proxy.writes })).then(pass, pass);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const proxy: FaultProxy = {
    url: `http://127.0.0.1:${port}`,
    writes: 0,
    async down(ms) {
      const closed = new Promise((r) => server.close(r));
      sockets.forEach((s) => s.destroy());
      await closed;
      await new Promise((r) => setTimeout(r, ms));
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    },
    async close() {
      const closed = new Promise((r) => server.close(r));
      sockets.forEach((s) => s.destroy());
      await closed;
    },
  };
  return proxy;
}

/** Every workflow of the tree under `rootId` (the pipeline and its stage children). */
export async function runTree(client: Client, rootId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const w of client.workflow.list({ query: `RootWorkflowId = "${rootId}"` })) ids.push(w.workflowId);
  return ids;
}

/**
 * What the runs under `rootId` are waiting for, one line per open workflow: its pending activities
 * (type, attempt, the last worker and failure) or "no pending activity". For a test that gives up
 * waiting, so that its failure says where a run stood.
 */
export async function pendingWork(client: Client, rootId: string): Promise<string[]> {
  const lines: string[] = [];
  for (const id of await runTree(client, rootId)) {
    const d = await client.workflow.getHandle(id).describe();
    if (d.status.name !== 'RUNNING') continue;
    const acts = (d.raw.pendingActivities ?? []).map(
      (a) =>
        `${a.activityType?.name} attempt ${a.attempt} state ${a.state} on ${a.lastWorkerIdentity || '-'}` +
        (a.lastFailure?.message ? ` (last failure: ${a.lastFailure.message.slice(0, 200)})` : ''),
    );
    lines.push(`${id}: ${acts.join('; ') || 'no pending activity'}`);
  }
  return lines;
}

/** How many times each child workflow ID was started from `workflowId`'s history. */
export async function childStarts(client: Client, workflowId: string): Promise<Map<string, number>> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const counts = new Map<string, number>();
  for (const e of history.events ?? []) {
    if (e.eventType !== EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) continue;
    const id = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? '';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** How many times each activity type was scheduled in `workflowId`'s history (retries are attempts, not schedules). */
export async function activitySchedules(client: Client, workflowId: string): Promise<Map<string, number>> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const counts = new Map<string, number>();
  for (const e of history.events ?? []) {
    if (e.eventType !== EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) continue;
    const type = e.activityTaskScheduledEventAttributes?.activityType?.name ?? '';
    counts.set(type, (counts.get(type) ?? 0) + 1);
  }
  return counts;
}

/**
 * Activities of the tree under `rootId` that needed more than one attempt: type, attempts, and how
 * long after it was scheduled the last attempt started (what a crash cost that activity).
 */
export async function retriedActivities(client: Client, rootId: string): Promise<string[]> {
  const out: string[] = [];
  for (const id of await runTree(client, rootId)) {
    const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    const scheduled = new Map<number, { type: string; at: number }>();
    for (const e of events) {
      const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        scheduled.set(Number(e.eventId), {
          type: e.activityTaskScheduledEventAttributes?.activityType?.name ?? '',
          at,
        });
      const started = e.activityTaskStartedEventAttributes;
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED && (started?.attempt ?? 1) > 1) {
        const s = scheduled.get(Number(started?.scheduledEventId));
        out.push(
          `${id.split('/').slice(-2).join('/')} ${s?.type} attempt ${started?.attempt} after ${((at - (s?.at ?? at)) / 1000).toFixed(1)} s`,
        );
      }
    }
  }
  return out;
}

export interface SecretScan {
  histories: number;
  objects: number;
  files: number;
  /** `<secret name> in <where>` for every place a secret value was found. */
  hits: string[];
}

/**
 * Looks for each secret value in every workflow history on the server (the payload bytes as
 * stored), every object of `buckets` (step logs and artifacts) and every file given (worker logs).
 */
export async function scanForSecrets(
  client: Client,
  s3: S3Client,
  secrets: Record<string, string>,
  o: { buckets: string[]; files: string[] },
): Promise<SecretScan> {
  const needles = Object.entries(secrets).map(([name, value]) => [name, Buffer.from(value)] as const);
  const scan: SecretScan = { histories: 0, objects: 0, files: 0, hits: [] };
  const look = (bytes: Buffer, where: string) => {
    for (const [name, needle] of needles) if (bytes.includes(needle)) scan.hits.push(`${name} in ${where}`);
  };
  for await (const w of client.workflow.list()) {
    const history = await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    look(Buffer.from(temporal.api.history.v1.History.encode(history).finish()), `history of ${w.workflowId}`);
    scan.histories++;
  }
  for (const bucket of o.buckets) {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      for (const obj of page.Contents ?? []) {
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: obj.Key! }));
        look(Buffer.from(await got.Body!.transformToByteArray()), `s3://${bucket}/${obj.Key}`);
        scan.objects++;
      }
      token = page.NextContinuationToken;
    } while (token);
  }
  for (const file of o.files) {
    if (!fs.existsSync(file)) continue;
    look(fs.readFileSync(file), file);
    scan.files++;
  }
  return scan;
}

/** The armoured private key's body lines: what a leak of the signing key would contain. */
export function privateKeyNeedles(keyFile: string): Record<string, string> {
  const lines = fs
    .readFileSync(keyFile, 'utf8')
    .split('\n')
    .filter((l) => /^[A-Za-z0-9+/=]{60,}$/.test(l));
  if (lines.length < 3) throw new Error(`${keyFile} holds no armoured key body`);
  // Lines from the middle: the secret key material, not the public key that opens the block.
  const mid = Math.floor(lines.length / 2);
  return { 'signing key (line a)': lines[mid], 'signing key (line b)': lines[lines.length - 2] };
}

/** Version → how many stanzas of `widget` the Packages file lists with it. */
export async function debCounts(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const counts = new Map<string, number>();
  for (const stanza of (await res.text()).split(/\n\n+/)) {
    if (!/^Package: widget$/m.test(stanza)) continue;
    const v = /^Version: (.+)$/m.exec(stanza)?.[1] ?? '?';
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  return counts;
}

/** Version (`ver-rel`) → how many `widget` packages primary.xml lists with it. */
export async function rpmCounts(base: string): Promise<Map<string, number>> {
  const repomd = await (await fetch(`${base}/repodata/repomd.xml`)).text();
  const href = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(repomd)?.[1];
  if (!href) throw new Error(`${base}/repodata/repomd.xml names no primary`);
  const primary = gunzipSync(Buffer.from(await (await fetch(`${base}/${href}`)).arrayBuffer())).toString('utf8');
  const counts = new Map<string, number>();
  for (const m of primary.matchAll(/<package type="rpm">[\s\S]*?<\/package>/g)) {
    if (!m[0].includes('<name>widget</name>')) continue;
    const ver = /<version [^>]*ver="([^"]+)" rel="([^"]+)"/.exec(m[0]);
    const v = ver ? `${ver[1]}-${ver[2]}` : '?';
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  return counts;
}
