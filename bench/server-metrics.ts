// The Temporal dev server's own metrics (its --metrics-port, Prometheus text format) around a
// burst: two snapshots, their difference, and the few figures that say whether the server or the
// workers held the burst back. Format: https://prometheus.io/docs/instrumenting/exposition_formats/
// No client library: the exposition format is a line per sample, and we read counters and
// histograms only.
import type { BenchContext } from './harness';

/** One sample: `name{labels} value`; `type` from the family's `# TYPE` line. */
interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
  type: string;
}

/** Samples by series key (name and sorted labels). */
export type MetricsSnapshot = Map<string, Series>;

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const HISTOGRAM_PARTS = ['_bucket', '_sum', '_count'];

const numberOf = (s: string) => (/^\+?Inf$/.test(s) ? Infinity : s === '-Inf' ? -Infinity : Number(s));
const unescape = (s: string) => s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
const keyOf = (name: string, labels: Record<string, string>) =>
  `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')}}`;

export function parseMetrics(text: string): MetricsSnapshot {
  const out: MetricsSnapshot = new Map();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1], type[2]);
    const m = line.startsWith('#') ? null : SAMPLE.exec(line);
    if (!m) continue;
    const [, name, labelText = '', value] = m;
    const labels: Record<string, string> = {};
    for (const l of labelText.matchAll(LABEL)) labels[l[1]] = unescape(l[2]);
    const part = HISTOGRAM_PARTS.find((p) => name.endsWith(p) && types.get(name.slice(0, -p.length)) === 'histogram');
    const family = part ? name.slice(0, -part.length) : name;
    out.set(keyOf(name, labels), { name, labels, value: numberOf(value), type: types.get(family) ?? 'untyped' });
  }
  return out;
}

/**
 * The server's metrics now, or undefined (and why, in the benchmark's log) when they cannot be read: a
 * figure the server does not give is "n/a", never a failed benchmark.
 */
export async function scrapeMetrics(ctx: BenchContext, url: string): Promise<MetricsSnapshot | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return parseMetrics(await res.text());
  } catch (err) {
    ctx.log(`server metrics at ${url} not read: ${(err as Error).message}`);
    return undefined;
  }
}

/** Counters and histograms of `after` less those of `before` (a series new in `after` counts from 0). */
export function metricsDelta(before: MetricsSnapshot, after: MetricsSnapshot): MetricsSnapshot {
  const out: MetricsSnapshot = new Map();
  for (const [key, s] of after) {
    if (s.type !== 'counter' && s.type !== 'histogram') continue;
    out.set(key, { ...s, value: s.value - (before.get(key)?.value ?? 0) });
  }
  return out;
}

type Where = (labels: Record<string, string>) => boolean;

interface Histogram {
  count: number;
  sum: number;
  /** Cumulative counts by upper bound, ascending. */
  buckets: [number, number][];
}

/** The series of histogram families `names` that match `where`, merged; undefined if the server has none. */
function histogram(snap: MetricsSnapshot, names: string[], where: Where = () => true): Histogram | undefined {
  const h: Histogram = { count: 0, sum: 0, buckets: [] };
  const byLe = new Map<number, number>();
  let found = false;
  for (const s of snap.values()) {
    const part = HISTOGRAM_PARTS.find((p) => names.some((n) => s.name === n + p));
    if (!part || s.type !== 'histogram' || !where(s.labels)) continue;
    found = true;
    if (part === '_sum') h.sum += s.value;
    else if (part === '_count') h.count += s.value;
    else {
      const le = numberOf(s.labels.le);
      byLe.set(le, (byLe.get(le) ?? 0) + s.value);
    }
  }
  h.buckets = [...byLe].sort((a, b) => a[0] - b[0]);
  return found ? h : undefined;
}

/** Prometheus' histogram_quantile: linear within the bucket that holds the rank. */
function quantileOf(h: Histogram, q: number): number {
  const total = h.buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, cum] of h.buckets) {
    if (cum >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(cum - below, 1e-9);
    }
    lower = le;
    below = cum;
  }
  return lower;
}

/** A latency histogram over the burst: how many, their mean and p90 (from the buckets) in ms, the seconds summed. */
export interface Latency {
  count: number;
  meanMs: number;
  p90Ms: number;
  summedS: number;
}

function latency(h: Histogram | undefined): Latency | undefined {
  if (!h) return undefined;
  // Temporal's histograms are in seconds.
  return { count: h.count, meanMs: (h.sum / h.count) * 1000, p90Ms: quantileOf(h, 0.9) * 1000, summedS: h.sum };
}

/** What the server's own metrics say about a burst; a field is undefined when this server build does not expose it. */
export interface ServerBurst {
  /** Workflow task scheduled → picked up by a worker's poll (history's task_schedule_to_start_latency). */
  workflowTaskWait?: Latency;
  /** Activity task scheduled → picked up by a worker's poll (eager activities skip it). */
  activityTaskWait?: Latency;
  /** The same by task queue (the server writes `-` in a queue's name as `_`). */
  activityTaskWaitByQueue?: Record<string, Latency>;
  /** The server's own internal queues (transfer, timer, visibility tasks): created → picked up (task_latency_queue). */
  serverQueueWait?: Latency;
  /** What a worker waits for the server to accept a result: Respond{Workflow,Activity}TaskCompleted at the frontend. */
  completions?: Latency;
  /** Every operation on the database (execution and visibility stores), all services and namespaces. */
  persistence?: Latency;
}

const isDefault: Where = (l) => l.namespace === 'default';

export function serverBurst(before: MetricsSnapshot | undefined, after: MetricsSnapshot | undefined): ServerBurst {
  if (!before || !after) return {};
  const d = metricsDelta(before, after);
  const isActivity: Where = (l) => isDefault(l) && l.task_type === 'Activity';
  const queues = new Set(
    [...d.values()]
      .filter((s) => s.name === 'task_schedule_to_start_latency_count' && isActivity(s.labels) && s.value > 0)
      .map((s) => s.labels.taskqueue),
  );
  return {
    workflowTaskWait: latency(
      histogram(d, ['task_schedule_to_start_latency'], (l) => isDefault(l) && l.task_type === 'Workflow'),
    ),
    activityTaskWait: latency(histogram(d, ['task_schedule_to_start_latency'], isActivity)),
    activityTaskWaitByQueue: Object.fromEntries(
      [...queues].map((q) => [
        q,
        latency(histogram(d, ['task_schedule_to_start_latency'], (l) => isActivity(l) && l.taskqueue === q))!,
      ]),
    ),
    serverQueueWait: latency(histogram(d, ['task_latency_queue'], isDefault)),
    completions: latency(
      histogram(
        d,
        ['service_latency'],
        (l) =>
          isDefault(l) &&
          l.service_name === 'frontend' &&
          (l.operation === 'RespondWorkflowTaskCompleted' || l.operation === 'RespondActivityTaskCompleted'),
      ),
    ),
    persistence: latency(histogram(d, ['persistence_latency', 'visibility_persistence_latency'])),
  };
}
