// 3. Webhook intake. The real API process (api/main.ts) against a dev server, loaded on loopback:
// (a) one signed push delivered again and again (every one after the first is answered
// `200 existing`): deliveries per second, p50/p99; (b) fresh pushes, each a new commit, new
// delivery ID and signature, each starting a pipeline run (no workers: the runs only start): runs
// started per second.
//
// Latencies under load come from wrk (Debian), never from autocannon: the webhook listener closes
// every connection after its answer (a GitHub delivery is one request), and autocannon 9.0.0
// mistimes exactly that. After each response it writes the next request onto the connection the
// server is closing, and that request's entry in its queue is neither answered nor dropped when it
// reconnects (lib/httpClient.js: `_doRequest` after kOnMessageComplete, `_connect` on 'end' without
// clearing `pipelinedRequests`), so every reconnect leaves one stale entry at the head of the queue
// and each later response is timed from an older start: its latencies grow with the run's length.
// The control rows show it in every run: autocannon against a bare node:http server that answers
// `Connection: close` reports seconds, against the same server with keep-alive about 0 ms.
// autocannon's requests/s are right (they agree with wrk's) and are kept; fresh pushes, which wrk
// cannot sign one by one, get their latency from one client at a time.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
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
    ctx.log('wrk not installed: no latency under load (apt-get install -y wrk)');
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

/** autocannon against a bare node:http server answering 200 with or without `Connection: close`:
 * the load generator's own latencies where the server takes no time (see the top of the file). */
async function autocannonControl(connections: number, duration: number, close: boolean) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, close ? { connection: 'close' } : {});
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as { port: number };
    return await autocannon({ url: `http://127.0.0.1:${port}/`, method: 'POST', body: '{}', connections, duration });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** p50/p99/max of one client sending `count` requests one at a time (no queueing). */
async function oneAtATime(count: number, send: () => Promise<Response>) {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const res = await send();
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`one at a time: answered ${res.status}`);
    times.push(performance.now() - t0);
  }
  return {
    times,
    p50: r2(quantile(times, 0.5)),
    p99: r2(quantile(times, 0.99)),
    max: r2(Math.max(...times)),
    perSecond: r2(1000 / median(times)),
  };
}

export const intake: Benchmark = {
  name: 'intake',
  describe: 'webhook intake: signed duplicate deliveries/s (autocannon, wrk) with p50/p99 (wrk), fresh pushes/s',
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
    ctx.log(`duplicates (autocannon): ${r2(dup.requests.average)}/s ${JSON.stringify(dup.statusCodeStats)}`);

    // The same delivery from one client, one request at a time: latency without queueing.
    const serial = await oneAtATime(ctx.quick ? 200 : 1000, () =>
      fetch(url, { method: 'POST', headers: dupHeaders, body }),
    );
    ctx.log(`serial duplicates: p50 ${serial.p50} ms p99 ${serial.p99} ms`);

    // The same load with wrk (Debian): the latencies under load.
    const wrk = await wrkDuplicates(ctx, url, dupHeaders, body, connections, duration);
    if (wrk) ctx.log(`wrk duplicates: ${JSON.stringify(wrk)}`);

    let n = 0;
    const freshPush = () => {
      const b = JSON.stringify(
        pushPayload({
          repository: REPOSITORY,
          branch: `fresh-${n++ % 50}`,
          sha: crypto.randomBytes(20).toString('hex'),
          message: 'fresh',
        }),
      );
      return { body: b, headers: headers(stack.secret, b) };
    };
    const fresh = await autocannon({
      url,
      connections,
      duration,
      requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, method: 'POST', ...freshPush() }) }],
    });
    ctx.log(`fresh: ${r2(fresh.requests.average)}/s, non-2xx ${fresh.non2xx}`);
    const freshSerial = await oneAtATime(ctx.quick ? 50 : 200, () => fetch(url, { method: 'POST', ...freshPush() }));
    ctx.log(`serial fresh pushes: p50 ${freshSerial.p50} ms p99 ${freshSerial.p99} ms`);
    const started = await stack.client.workflow.count(`WorkflowType = 'pipeline'`);

    // The load generator's own latencies against a server that takes no time.
    const controlSeconds = ctx.quick ? 4 : 8;
    const closing = await autocannonControl(connections, controlSeconds, true);
    const keepAlive = await autocannonControl(connections, controlSeconds, false);
    ctx.log(
      `autocannon control: Connection: close p50 ${closing.latency.p50} ms p99 ${closing.latency.p99} ms; ` +
        `keep-alive p50 ${keepAlive.latency.p50} ms p99 ${keepAlive.latency.p99} ms`,
    );

    const NOT_TIMED = 'see control';
    const rows: Row[] = [
      {
        load: `duplicate signed push, autocannon, ${connections} connections, ${duration} s`,
        'requests/s': r2(dup.requests.average),
        'p50 ms': NOT_TIMED,
        'p99 ms': NOT_TIMED,
        requests: dup.requests.total,
        'non-2xx': dup.non2xx,
        errors: dup.errors + dup.timeouts,
      },
      ...(wrk
        ? [
            {
              load: `duplicate signed push, wrk, ${connections} connections, ${duration} s`,
              'requests/s': wrk.perSecond,
              'p50 ms': wrk.p50,
              'p99 ms': wrk.p99,
              requests: wrk.requests,
              'non-2xx': wrk.non2xx,
            },
          ]
        : []),
      {
        load: 'duplicate signed push, 1 client, one at a time (fetch)',
        'requests/s': serial.perSecond,
        'p50 ms': serial.p50,
        'p99 ms': serial.p99,
        'max ms': serial.max,
        requests: serial.times.length,
      },
      {
        load: `fresh pushes (each starts a run), autocannon, ${connections} connections, ${duration} s`,
        'requests/s': r2(fresh.requests.average),
        'p50 ms': NOT_TIMED,
        'p99 ms': NOT_TIMED,
        requests: fresh.requests.total,
        'non-2xx': fresh.non2xx,
        errors: fresh.errors + fresh.timeouts,
      },
      {
        load: 'fresh pushes, 1 client, one at a time (fetch)',
        'requests/s': freshSerial.perSecond,
        'p50 ms': freshSerial.p50,
        'p99 ms': freshSerial.p99,
        'max ms': freshSerial.max,
        requests: freshSerial.times.length,
      },
      { load: 'pipeline runs started (visibility count)', requests: started.count },
      ...[
        { label: 'answers Connection: close', r: closing },
        { label: 'keeps the connection alive', r: keepAlive },
      ].map(({ label, r }) => ({
        load: `control: autocannon vs a bare node:http server that ${label}, ${controlSeconds} s`,
        'requests/s': r2(r.requests.average),
        'p50 ms': r.latency.p50,
        'p99 ms': r.latency.p99,
        'max ms': r.latency.max,
        requests: r.requests.total,
      })),
    ];
    return {
      rows,
      figures: {
        dup_per_s: Math.round(dup.requests.average),
        ...(wrk ? { wrk_dup_per_s: Math.round(wrk.perSecond), dup_p50_ms: wrk.p50, dup_p99_ms: wrk.p99 } : {}),
        serial_p50_ms: serial.p50,
        serial_p99_ms: serial.p99,
        fresh_per_s: Math.round(fresh.requests.average),
        fresh_serial_p50_ms: freshSerial.p50,
        fresh_serial_p99_ms: freshSerial.p99,
        runs_started: started.count,
        control_close_p50_ms: closing.latency.p50,
        control_keepalive_p50_ms: keepAlive.latency.p50,
        duration_s: ms(duration),
      },
      notes: [
        'autocannon 9.0.0 and wrk in the benchmark process and beside it (they share the 2 cores with the API and the dev server); targets ≥ 3,000 duplicates/s, p99 ≤ 25 ms (wrk)',
        wrk
          ? 'latencies under load: wrk; autocannon mistimes a server that closes each connection (control rows, top of bench/intake.ts)'
          : 'wrk is not installed (apt-get install -y wrk; npm run bootstrap as root installs it): no latency under load',
      ],
    };
  },
};
