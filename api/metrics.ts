// The API's own metrics in Prometheus text format (exposition format 0.0.4), written by hand:
// a handful of series do not justify a metrics library, and the format is small and stable
// (https://prometheus.io/docs/instrumenting/exposition_formats/). The intake series (open
// connections, unverified bytes held, connections dropped) and the process's memory show whether
// the webhook listener's bounds hold under slow or oversized senders.
import type { IntakeStats } from './intake-guard';

/** What became of a webhook delivery; one label value per kind of answer. */
export type DeliveryOutcome =
  | 'started'
  | 'existing'
  | 'queued'
  | 'ignored'
  | 'pong'
  | 'unauthorized'
  | 'bad_request'
  | 'unsupported_media_type'
  | 'too_large'
  | 'overloaded'
  | 'failed';

export type StartSource = 'webhook' | 'spool';

/** Upper bounds of the start latency buckets, in seconds. */
const START_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface ApiMetrics {
  delivery(outcome: DeliveryOutcome): void;
  /** One call of Temporal's StartWorkflowExecution, whatever its result. */
  startLatency(seconds: number): void;
  runStarted(source: StartSource): void;
  setSpoolDepth(depth: number): void;
  setTemporalUp(up: boolean): void;
  /** Where the intake series come from (the webhook listener's guard). */
  setIntakeSource(fn: () => IntakeStats): void;
  render(): string;
}

export function createMetrics(): ApiMetrics {
  const deliveries = new Map<DeliveryOutcome, number>();
  const started = new Map<StartSource, number>();
  const buckets = START_BUCKETS.map(() => 0);
  let startCount = 0;
  let startSum = 0;
  let spoolDepth = 0;
  let temporalUp = 1;
  let intake: (() => IntakeStats) | undefined;

  return {
    delivery(outcome) {
      deliveries.set(outcome, (deliveries.get(outcome) ?? 0) + 1);
    },
    startLatency(seconds) {
      startCount += 1;
      startSum += seconds;
      START_BUCKETS.forEach((le, i) => {
        if (seconds <= le) buckets[i] += 1;
      });
    },
    runStarted(source) {
      started.set(source, (started.get(source) ?? 0) + 1);
    },
    setSpoolDepth(depth) {
      spoolDepth = depth;
    },
    setTemporalUp(up) {
      temporalUp = up ? 1 : 0;
    },
    setIntakeSource(fn) {
      intake = fn;
    },
    render() {
      const lines: string[] = [];
      const family = (name: string, type: string, help: string) =>
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

      family('conveyor_api_deliveries_total', 'counter', 'GitHub webhook deliveries by outcome.');
      for (const [outcome, n] of [...deliveries].sort()) {
        lines.push(`conveyor_api_deliveries_total{outcome="${outcome}"} ${n}`);
      }
      family('conveyor_api_start_duration_seconds', 'histogram', 'Latency of starting a pipeline on Temporal.');
      START_BUCKETS.forEach((le, i) => {
        lines.push(`conveyor_api_start_duration_seconds_bucket{le="${le}"} ${buckets[i]}`);
      });
      lines.push(`conveyor_api_start_duration_seconds_bucket{le="+Inf"} ${startCount}`);
      lines.push(`conveyor_api_start_duration_seconds_sum ${startSum}`);
      lines.push(`conveyor_api_start_duration_seconds_count ${startCount}`);
      family(
        'conveyor_api_runs_started_total',
        'counter',
        'Pipeline starts Temporal confirmed to this API, by source.',
      );
      for (const source of ['webhook', 'spool'] as const) {
        lines.push(`conveyor_api_runs_started_total{source="${source}"} ${started.get(source) ?? 0}`);
      }
      family('conveyor_api_spool_depth', 'gauge', 'Verified pushes waiting in the spool for Temporal.');
      lines.push(`conveyor_api_spool_depth ${spoolDepth}`);
      family('conveyor_api_temporal_up', 'gauge', '1 while the last call to Temporal succeeded.');
      lines.push(`conveyor_api_temporal_up ${temporalUp}`);
      if (intake) {
        const st = intake();
        family('conveyor_api_open_connections', 'gauge', 'Open connections on the webhook listener.');
        lines.push(`conveyor_api_open_connections ${st.connections}`);
        family(
          'conveyor_api_unverified_body_bytes',
          'gauge',
          'Request body bytes held before their signature is checked.',
        );
        lines.push(`conveyor_api_unverified_body_bytes ${st.bufferedBytes}`);
        family(
          'conveyor_api_dropped_connections_total',
          'counter',
          'Unverified connections dropped to stay within a limit, by limit.',
        );
        for (const [reason, n] of Object.entries(st.dropped)) {
          lines.push(`conveyor_api_dropped_connections_total{reason="${reason}"} ${n}`);
        }
      }
      const mem = process.memoryUsage();
      family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.');
      lines.push(`process_resident_memory_bytes ${mem.rss}`);
      family('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use, in bytes.');
      lines.push(`nodejs_heap_used_bytes ${mem.heapUsed}`);
      family('nodejs_external_memory_bytes', 'gauge', 'Memory outside the V8 heap (Buffers), in bytes.');
      lines.push(`nodejs_external_memory_bytes ${mem.external}`);
      return lines.join('\n') + '\n';
    },
  };
}
