// 3. Webhook intake. The real API process (api/main.ts) against a dev server, loaded with
// autocannon on loopback: (a) one signed push delivered again and again (every one after the
// first is answered `200 existing`): deliveries per second, p50/p99; (b) fresh pushes, each a new
// commit, new delivery ID and signature, each starting a pipeline run (no workers: the runs
// only start): runs started per second.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { pushPayload } from '../cli/webhook-client';
import { REPOSITORY, startChainStack } from './chain-stack';
import { median, ms, quantile, r2, requireTool, run, type BenchContext, type Benchmark, type Row } from './harness';

const sign = (secret: string, body: string) =>
  `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;

function headers(secret: string, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-github-event': 'push',
    'x-github-delivery': crypto.randomUUID(),
    'user-agent': 'GitHub-Hookshot/bench',
    'x-hub-signature-256': sign(secret, body),
  };
}

/** wrk's figures for the duplicate load, or undefined when wrk is not installed (apt-get install wrk). */
async function wrkDuplicates(
  ctx: BenchContext,
  url: string,
  hdrs: Record<string, string>,
  body: string,
  connections: number,
  duration: number,
) {
  try {
    requireTool('wrk', 'apt-get install -y wrk');
  } catch {
    ctx.log('wrk not installed: no cross-check (apt-get install -y wrk)');
    return undefined;
  }
  const script = path.join(ctx.dir, 'duplicate.lua');
  fs.writeFileSync(
    script,
    [
      'wrk.method = "POST"',
      `wrk.body = [==[${body}]==]`,
      ...Object.entries(hdrs).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`),
      '',
    ].join('\n'),
  );
  const { stdout } = await run(ctx, 'wrk', [
    '-t1',
    `-c${connections}`,
    `-d${duration}s`,
    '--latency',
    '-s',
    script,
    url,
  ]);
  const toMs = (v: string, unit: string) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? NaN);
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(stdout);
    return m ? r2(toMs(m[1], m[2])) : NaN;
  };
  return {
    perSecond: r2(Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN)),
    p50: pct('50'),
    p99: pct('99'),
    requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0),
  };
}

export const intake: Benchmark = {
  name: 'intake',
  describe: 'webhook intake with autocannon: signed duplicate deliveries/s with p50/p99, fresh pushes/s',
  async run(ctx) {
    const duration = ctx.quick ? 8 : 20;
    const connections = 16;
    const stack = await startChainStack(ctx, { staging: false, workers: false, tag: 'intake' });
    const url = `${stack.apiUrl}/webhooks/github`;
    const sha = crypto.randomBytes(20).toString('hex');
    const body = JSON.stringify(pushPayload({ repository: REPOSITORY, branch: 'main', sha, message: 'duplicate' }));
    const dupHeaders = headers(stack.secret, body);
    const first = await fetch(url, { method: 'POST', headers: dupHeaders, body });
    ctx.log(`first delivery: ${first.status} ${await first.text()}`);
    // Warm-up, not counted.
    await autocannon({ url, method: 'POST', headers: dupHeaders, body, connections, duration: 2 });
    const dup = await autocannon({ url, method: 'POST', headers: dupHeaders, body, connections, duration });
    ctx.log(
      `duplicates: ${r2(dup.requests.average)}/s ${JSON.stringify(dup.latency)} ${JSON.stringify(dup.statusCodeStats)}`,
    );

    // The same delivery from one client, one request at a time: latency without queueing.
    const serial: number[] = [];
    for (let i = 0; i < (ctx.quick ? 200 : 1000); i++) {
      const t0 = performance.now();
      const res = await fetch(url, { method: 'POST', headers: dupHeaders, body });
      await res.arrayBuffer();
      serial.push(performance.now() - t0);
    }
    ctx.log(`serial duplicates: p50 ${r2(quantile(serial, 0.5))} ms p99 ${r2(quantile(serial, 0.99))} ms`);

    // Cross-check of the same load with wrk (Debian), when it is installed.
    const crossCheck = await wrkDuplicates(ctx, url, dupHeaders, body, connections, duration);
    if (crossCheck) ctx.log(`wrk duplicates: ${JSON.stringify(crossCheck)}`);

    let n = 0;
    const fresh = await autocannon({
      url,
      connections,
      duration,
      requests: [
        {
          method: 'POST',
          setupRequest: (req) => {
            const b = JSON.stringify(
              pushPayload({
                repository: REPOSITORY,
                branch: `fresh-${n++ % 50}`,
                sha: crypto.randomBytes(20).toString('hex'),
                message: 'fresh',
              }),
            );
            return { ...req, method: 'POST', body: b, headers: headers(stack.secret, b) };
          },
        },
      ],
    });
    ctx.log(`fresh: ${r2(fresh.requests.average)}/s p99 ${fresh.latency.p99} ms, non-2xx ${fresh.non2xx}`);
    const started = await stack.client.workflow.count(`WorkflowType = 'pipeline'`);
    const rows: Row[] = [
      {
        load: `duplicate signed push, ${connections} connections, ${duration} s`,
        'requests/s': r2(dup.requests.average),
        'p50 ms': dup.latency.p50,
        'p99 ms': dup.latency.p99,
        'max ms': dup.latency.max,
        requests: dup.requests.total,
        'non-2xx': dup.non2xx,
        errors: dup.errors + dup.timeouts,
      },
      {
        load: `fresh pushes (each starts a run), ${connections} connections, ${duration} s`,
        'requests/s': r2(fresh.requests.average),
        'p50 ms': fresh.latency.p50,
        'p99 ms': fresh.latency.p99,
        'max ms': fresh.latency.max,
        requests: fresh.requests.total,
        'non-2xx': fresh.non2xx,
        errors: fresh.errors + fresh.timeouts,
      },
      {
        load: 'duplicate signed push, 1 client, one at a time (fetch)',
        'requests/s': r2(1000 / median(serial)),
        'p50 ms': r2(quantile(serial, 0.5)),
        'p99 ms': r2(quantile(serial, 0.99)),
        'max ms': r2(Math.max(...serial)),
        requests: serial.length,
      },
      ...(crossCheck
        ? [
            {
              load: `duplicate signed push, wrk, ${connections} connections, ${duration} s`,
              'requests/s': crossCheck.perSecond,
              'p50 ms': crossCheck.p50,
              'p99 ms': crossCheck.p99,
              requests: crossCheck.requests,
              'non-2xx': crossCheck.non2xx,
            },
          ]
        : []),
      { load: 'pipeline runs started (visibility count)', requests: started.count },
    ];
    return {
      rows,
      figures: {
        dup_per_s: Math.round(dup.requests.average),
        dup_p50_ms: dup.latency.p50,
        dup_p99_ms: dup.latency.p99,
        serial_p50_ms: r2(quantile(serial, 0.5)),
        serial_p99_ms: r2(quantile(serial, 0.99)),
        ...(crossCheck ? { wrk_dup_per_s: Math.round(crossCheck.perSecond), wrk_p99_ms: crossCheck.p99 } : {}),
        fresh_per_s: Math.round(fresh.requests.average),
        fresh_p99_ms: fresh.latency.p99,
        runs_started: started.count,
        duration_s: ms(duration),
      },
      notes: [
        'autocannon 9.0.0 in the benchmark process (it shares the 2 cores with the API and the dev server); targets ≥ 3,000 duplicates/s, p99 ≤ 25 ms',
      ],
    };
  },
};
