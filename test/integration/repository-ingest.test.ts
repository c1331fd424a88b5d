// The publisher's fast ingest paths against the real tools they stand in for: .debs read
// in-process (deb-archive.ts) must give exactly what dpkg-deb gives, for the compressions dpkg-deb
// builds with, and leave to dpkg-deb what they cannot read; rpm headers read in-process
// (rpm-header.ts) must agree with `rpm -qp`; the server-side copy of an artifact to the pool
// (publish-upload.ts) must refuse bytes that are not the ones checked.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type ApplicationFailure } from '@temporalio/common';
import { runChecked } from '../../activities/exec/process';
import { activityScope } from '../../activities/repository/activity-scope';
import { filesOfListing } from '../../activities/repository/deb-index-facts';
import { readDebs } from '../../activities/repository/deb-archive';
import { controlStanza, readDebControl } from '../../activities/repository/deb-control';
import { uploadPool } from '../../activities/repository/publish-upload';
import type { EngineDeps, Ingested, RepositoryFormat } from '../../activities/repository/publish-types';
import type { PublishPlan } from '../../activities/repository/publish-plan';
import { createRepoStore } from '../../activities/repository/repo-store';
import { evrOf, readRpmNevra } from '../../activities/repository/rpm-header';
import { copyChecked, hashFile } from '../../activities/repository/s3-objects';
import { checkRpm } from '../../activities/repository/yum-format';
import type { ArtifactRef } from '../../common/types';
import { parseS3Url } from '../../config/conveyor';
import { buildTestRpm, type ArtifactTarget } from '../helpers/packages';
import { awsFor, tempDir, testConfig, uid } from '../helpers/stack';

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** A .deb built by dpkg-deb itself, with the given compression (-Z), and a symlink and a hard
 * link besides regular files and directories, so Contents' every kind of line is covered. */
async function dpkgDeb(dir: string, name: string, compression: string, control?: string): Promise<string> {
  const root = path.join(dir, `${name}-${compression}-${uid()}`);
  fs.mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr/share', name, 'deep/er'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'DEBIAN/control'),
    control ??
      `Package: ${name}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@example.com>\n` +
        'Description: a test package\n with a second line\n .\n and a third\n',
  );
  fs.writeFileSync(path.join(root, 'usr/bin', name), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  fs.writeFileSync(path.join(root, 'usr/share', name, 'deep/er', `${'long-name-'.repeat(12)}.txt`), 'x');
  fs.symlinkSync(`../share/${name}/VERSION`, path.join(root, 'usr/bin', `${name}-version`));
  fs.writeFileSync(path.join(root, 'usr/share', name, 'VERSION'), '1.0-1\n');
  fs.linkSync(path.join(root, 'usr/share', name, 'VERSION'), path.join(root, 'usr/share', name, 'VERSION.hard'));
  const out = path.join(dir, `${name}-${compression}-${uid()}.deb`);
  await runChecked('dpkg-deb', [`-Z${compression}`, '--root-owner-group', '--build', root, out]);
  return out;
}

/** What apt-format.ts's dpkg-deb path lists. */
async function dpkgFiles(file: string): Promise<string[]> {
  return filesOfListing(await runChecked('dpkg-deb', ['--contents', file]));
}

/** A .deb assembled by hand with xz members (dpkg-deb --build refuses some hostile control files). */
async function craftXzDeb(dir: string, name: string, control: string): Promise<string> {
  const work = path.join(dir, `craft-${uid()}`);
  fs.mkdirSync(path.join(work, 'ctl'), { recursive: true });
  fs.mkdirSync(path.join(work, 'data/usr/share', name), { recursive: true });
  fs.writeFileSync(path.join(work, 'data/usr/share', name, 'VERSION'), '1.0-1\n');
  fs.writeFileSync(path.join(work, 'ctl/control'), control);
  fs.writeFileSync(path.join(work, 'debian-binary'), '2.0\n');
  const tar = (out: string, from: string, what: string) =>
    runChecked('tar', ['--owner=0', '--group=0', '-cJf', path.join(work, out), '-C', path.join(work, from), what]);
  await tar('control.tar.xz', 'ctl', './control');
  await tar('data.tar.xz', 'data', '.');
  const out = path.join(dir, `${name}-${uid()}.deb`);
  await runChecked('ar', ['rc', out, 'debian-binary', 'control.tar.xz', 'data.tar.xz'], { cwd: work });
  return out;
}

function crc32(b: Buffer): number {
  let c = ~0;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** The .deb with its data member's (last member's) xz index declaring 512 more uncompressed
 * bytes than the stream holds, the index CRC32 recomputed: a well-formed lie. */
function lieAboutSize(deb: Buffer): Buffer {
  const b = Buffer.from(deb);
  const end = b[b.length - 1] === 0x5a ? b.length : b.length - 1; // ar pads odd members
  const indexSize = (b.readUInt32LE(end - 8) + 1) * 4;
  const at = end - 12 - indexSize;
  // indicator 0x00, 1 record: unpadded size, uncompressed size (both varints).
  expect(b[at]).toBe(0);
  expect(b[at + 1]).toBe(1);
  let p = at + 2;
  while (b[p] & 0x80) p++;
  p++;
  const start = p;
  let size = 0;
  for (let i = 0; ; i++) {
    size += (b[p] & 0x7f) * 2 ** (7 * i);
    if (!(b[p++] & 0x80)) break;
  }
  const bytes: number[] = [];
  for (let v = size + 512; ;) {
    const low = v % 128;
    v = Math.floor(v / 128);
    bytes.push(v > 0 ? low | 0x80 : low);
    if (v === 0) break;
  }
  expect(bytes.length).toBe(p - start); // same length: the layout stays valid
  Buffer.from(bytes).copy(b, start);
  b.writeUInt32LE(crc32(b.subarray(at, at + indexSize - 4)), at + indexSize - 4);
  return b;
}

const refOf = (file: string, name: string): ArtifactRef => ({
  key: `packages/bookworm/${'0'.repeat(64)}/${path.basename(file)}`,
  sha256: '0'.repeat(64),
  size: fs.statSync(file).size,
  name,
  version: '1.0-1',
  arch: 'all',
  format: 'deb',
  file: path.basename(file),
  distro: 'bookworm',
});

describe('.debs read without dpkg-deb', () => {
  const dir = tempDir('ingest-debs');

  it('gives what dpkg-deb gives for xz (dpkg-deb default), gzip and uncompressed members', async () => {
    const files = [
      await dpkgDeb(dir, 'alpha', 'xz'),
      await dpkgDeb(dir, 'bravo', 'gzip'),
      await dpkgDeb(dir, 'charlie', 'none'),
    ];
    // The default really is xz: what our packaging step builds goes through the xz batch.
    expect(await runChecked('ar', ['t', files[0]])).toBe('debian-binary\ncontrol.tar.xz\ndata.tar.xz\n');
    const read = await readDebs(files);
    for (const [i, file] of files.entries()) {
      const fast = read[i];
      expect(fast).toBeDefined();
      const name = ['alpha', 'bravo', 'charlie'][i];
      expect(controlStanza(fast!.control, refOf(file, name))).toBe(await readDebControl(file, refOf(file, name)));
      expect(fast!.files).toEqual(await dpkgFiles(file));
      expect(fast!.files).toContain(`usr/bin/${name}-version`);
      expect(fast!.files).toContain(`usr/share/${name}/VERSION.hard`);
      expect(fast!.hashes).toEqual(await hashFile(file));
    }
  });

  it('leaves to dpkg-deb a compression it cannot read (zstd), a damaged archive and a lying xz index', async () => {
    const good = await dpkgDeb(dir, 'delta', 'xz');
    const zstd = await dpkgDeb(dir, 'echo', 'zstd');
    const truncated = path.join(dir, 'truncated.deb');
    fs.writeFileSync(truncated, fs.readFileSync(good).subarray(0, fs.statSync(good).size - 40));
    // Same layout, but the data member's xz index declares 512 bytes more than the stream holds
    // (its CRC32 made right again): xz refuses the stream, and the batch goes to dpkg-deb.
    const lying = path.join(dir, 'lying.deb');
    fs.writeFileSync(lying, lieAboutSize(fs.readFileSync(good)));
    const read = await readDebs([zstd, truncated, good, lying]);
    expect(read[0]).toBeUndefined();
    expect(read[1]).toBeUndefined();
    // The batch that held a member xz refused is not used at all.
    expect(read[2]).toBeUndefined();
    expect(read[3]).toBeUndefined();
    // The good one alone goes the fast way; dpkg-deb reads the zstd one and refuses the damaged one.
    expect((await readDebs([good]))[0]?.files).toEqual(await dpkgFiles(good));
    expect(await readDebControl(zstd, refOf(zstd, 'echo'))).toContain('Package: echo\n');
    // dpkg-deb reads its control member, then refuses to list its files (the ingest's own error).
    await expect(runChecked('dpkg-deb', ['--contents', truncated])).rejects.toThrow();
  });

  it('hands a hostile control file in an xz member to the same checks, with the same messages', async () => {
    const control =
      'Package: smuggler\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@example.com>\n' +
      'Description: ideas\n more\n\nPackage: evil\nVersion: 6.6.6\nArchitecture: all\n';
    const file = await craftXzDeb(dir, 'smuggler', control);
    const [fast] = await readDebs([file]);
    expect(fast?.control).toBe(control);
    let err: ApplicationFailure | undefined;
    try {
      controlStanza(fast!.control, refOf(file, 'smuggler'));
    } catch (e) {
      err = e as ApplicationFailure;
    }
    expect(err?.type).toBe('BadPackage');
    expect(err?.nonRetryable).toBe(true);
    expect(err?.message).toContain('second paragraph');
    // The dpkg-deb path says the same of the same file.
    await expect(readDebControl(file, refOf(file, 'smuggler'))).rejects.toThrow(err!.message);

    const owned = 'Package: smuggler\nVersion: 1.0-1\nArchitecture: all\nFilename: ../../evil\nDescription: x\n';
    const [f2] = await readDebs([await craftXzDeb(dir, 'smuggler', owned)]);
    expect(() => controlStanza(f2!.control, refOf(file, 'smuggler'))).toThrow(/field "Filename"/);

    const wrong = await dpkgDeb(dir, 'foxtrot', 'xz');
    const [w] = await readDebs([wrong]);
    expect(() => controlStanza(w!.control, { ...refOf(wrong, 'foxtrot'), version: '2.0-1' })).toThrow(
      /declares foxtrot 1\.0-1 all, but its artifact reference says foxtrot 2\.0-1 all/,
    );
  });
});

describe('rpm headers read without rpm', () => {
  let target: ArtifactTarget;
  beforeAll(async () => {
    const config = testConfig([]);
    const s3 = (await awsFor(config)).s3;
    target = { s3, bucket: parseS3Url(config.storage.artifacts).bucket, distro: 'el9', dir: tempDir('ingest-rpm') };
  });

  it('reads the NEVRA rpm -qp reports, and a mismatch still gets rpm -qp’s verdict', async () => {
    const a = await buildTestRpm({ name: 'golf', version: '2.1', release: '3' }, target);
    const read = await readRpmNevra(a.path);
    const q = await runChecked('rpm', ['-qp', '--qf', '%{NAME} %{EPOCHNUM} %{VERSION} %{RELEASE} %{ARCH}', a.path]);
    expect(`${read!.name} ${read!.epoch} ${read!.version} ${read!.release} ${read!.arch}`).toBe(q.trim());
    expect(evrOf(read!)).toBe('2.1-3');
    await expect(checkRpm(a.path, a)).resolves.toBeUndefined();
    await expect(checkRpm(a.path, { ...a, version: '2.1-4' })).rejects.toThrow(
      /declares golf 2\.1-3 noarch, but its artifact reference says golf 2\.1-4 noarch/,
    );
    // A header larger than the reader's first window (64 KiB): its description alone is 100 kB,
    // and the tags after it (ARCH) are read from the file beyond the window.
    const big = await buildTestRpm(
      {
        name: 'hotel',
        version: '1.0',
        release: '1',
        description: Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(44)}`).join('\n'),
      },
      target,
    );
    expect(fs.statSync(big.path).size).toBeGreaterThan(100000);
    const bigRead = await readRpmNevra(big.path);
    expect(bigRead).toEqual({ name: 'hotel', epoch: 0, version: '1.0', release: '1', arch: 'noarch' });
    const notRpm = path.join(target.dir, 'not.rpm');
    fs.writeFileSync(notRpm, 'not an rpm at all');
    expect(await readRpmNevra(notRpm)).toBeUndefined();
    await expect(checkRpm(notRpm, { ...a, file: 'not.rpm' })).rejects.toThrow(/is not a valid rpm/);
  });
});

describe('server-side copies to the pool', () => {
  let s3: S3Client;
  let artifacts: string;
  let staging: string;
  beforeAll(async () => {
    const config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    artifacts = parseS3Url(config.storage.artifacts).bucket;
    staging = parseS3Url(config.storage.staging).bucket;
  });
  const put = (Bucket: string, Key: string, Body: Buffer) => s3.send(new PutObjectCommand({ Bucket, Key, Body }));
  const body = async (Bucket: string, Key: string) => {
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket, Key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch {
      return undefined;
    }
  };

  it('copies exactly the recorded bytes, and refuses and removes a copy of other bytes', async () => {
    const id = uid();
    const bytes = Buffer.from(`the checked bytes ${id}`);
    await put(artifacts, `copy-${id}/a.deb`, bytes);
    const from = { bucket: artifacts, key: `copy-${id}/a.deb` };
    const ok = await copyChecked(
      s3,
      from,
      { bucket: staging, key: `copy-${id}/pool/a.deb` },
      {
        contentType: 'application/vnd.debian.binary-package',
        immutable: true,
        sha256: sha256(bytes),
      },
    );
    expect(ok.outcome).toBe('copied');
    expect(await body(staging, `copy-${id}/pool/a.deb`)).toEqual(bytes);

    // The artifact changed after it was downloaded and checked: the copy says so and is gone.
    await put(artifacts, from.key, Buffer.from('other bytes'));
    const bad = await copyChecked(
      s3,
      from,
      { bucket: staging, key: `copy-${id}/pool/b.deb` },
      {
        contentType: 'application/vnd.debian.binary-package',
        immutable: true,
        sha256: sha256(bytes),
      },
    );
    expect(bad).toEqual({ outcome: 'mismatch', sha256: sha256(Buffer.from('other bytes')) });
    expect(await body(staging, `copy-${id}/pool/b.deb`)).toBeUndefined();
  });

  it('fails the pool step with ArtifactMismatch when the source is not the bytes the index will name', async () => {
    const id = uid();
    const checked = Buffer.from(`checked ${id}`);
    const file = path.join(tempDir('ingest-copy'), 'a.deb');
    fs.writeFileSync(file, checked);
    await put(artifacts, `copy-${id}/a.deb`, Buffer.from(`swapped ${id}`));
    const ref = { ...refOf(file, 'alpha'), key: `copy-${id}/a.deb`, sha256: sha256(checked) };
    const h = await hashFile(file);
    const ingested: Ingested = {
      pkg: {
        name: 'alpha',
        version: '1.0-1',
        arch: 'all',
        artifact: ref,
        key: `apt/pool/copy-${id}/alpha/a.deb`,
        sha256: h.sha256,
        md5: h.md5,
        size: h.size,
        meta: {},
      },
      upload: file,
      copyFrom: { bucket: artifacts, key: ref.key },
    };
    const scope = activityScope();
    const deps = {
      store: createRepoStore(s3, staging),
      artifactsStore: { s3, bucket: artifacts },
      scope,
    } as unknown as EngineDeps;
    const fmt = { poolContentType: 'application/vnd.debian.binary-package' } as RepositoryFormat;
    const plan = { listing: new Map() } as unknown as PublishPlan;
    const uploaded: string[] = [];
    const err = await uploadPool(deps, fmt, plan, [ingested], uploaded).then(
      () => undefined,
      (e: ApplicationFailure) => e,
    );
    scope.close();
    expect(err?.type).toBe('ArtifactMismatch');
    expect(err?.nonRetryable).toBe(true);
    expect(err?.message).toContain(`changed after it was checked`);
    expect(uploaded).toEqual([]);
    expect(await body(staging, ingested.pkg.key)).toBeUndefined();
  });
});
