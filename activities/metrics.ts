// Conveyor's own series from activities, through the activity context's metric meter
// (`Context.current().metricMeter`): it goes to the worker runtime's Prometheus exporter
// (workers/runtime.ts installRuntime) with the activity's tags (namespace, task_queue,
// activity_type, and stage/distro from workers/activity-context.ts). Outside an activity (a
// script, a unit test calling a function directly) nothing is recorded.
import fs from 'node:fs';
import { Context } from '@temporalio/activity';
import type { MetricMeter } from '@temporalio/common';
import type { RepoStore } from './repository/repo-store';

function meter(): MetricMeter | undefined {
  try {
    return Context.current().metricMeter;
  } catch {
    return undefined; // not in an activity
  }
}

/**
 * The store, counting what it writes into `conveyor_publish_bytes_total` and
 * `conveyor_publish_objects_total` (by environment): objects actually written, not the ones a
 * write-once put found already there (adopted), so a publish of the same build twice adds nothing.
 */
export function countingStore(store: RepoStore, environment: string): RepoStore {
  const m = meter();
  if (!m) return store;
  const bytes = m.createCounter(
    'conveyor_publish_bytes',
    undefined,
    'Bytes written to repository buckets by publishes.',
  );
  const objects = m.createCounter(
    'conveyor_publish_objects',
    undefined,
    'Objects written to repository buckets by publishes (packages, indexes, signatures, docs, state).',
  );
  const count = (body: Buffer | { file: string }) => {
    const size = Buffer.isBuffer(body) ? body.length : fs.statSync(body.file).size;
    bytes.add(size, { environment });
    objects.add(1, { environment });
  };
  return {
    ...store,
    url: (k) => store.url(k),
    list: (p, s) => store.list(p, s),
    get: (k, s) => store.get(k, s),
    head: (k, s) => store.head(k, s),
    download: (k, f, s) => store.download(k, f, s),
    delete: (k, s) => store.delete(k, s),
    async put(key, body, opts, signal) {
      await store.put(key, body, opts, signal);
      count(body);
    },
    async putOnce(key, body, opts, signal) {
      const r = await store.putOnce(key, body, opts, signal);
      if (r === 'written') count(body);
      return r;
    },
    async replaceOnce(key, body, opts, signal) {
      const r = await store.replaceOnce(key, body, opts, signal);
      if (r === 'written') count(body);
      return r;
    },
  };
}

/** One host upgrade or rollback as it ended: `changed`, `unchanged` (already at the version) or `failed`. */
export function countHostChange(kind: 'upgrade' | 'rollback', outcome: 'changed' | 'unchanged' | 'failed'): void {
  const m = meter();
  if (!m) return;
  const name = kind === 'rollback' ? 'conveyor_host_rollbacks' : 'conveyor_host_upgrades';
  m.createCounter(name, undefined, `Staging host ${kind}s, by outcome.`).add(1, { outcome });
}
