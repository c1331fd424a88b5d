// The package stage's activities against the real parts: git repositories made from the demo's
// sample project, dpkg-deb/rpm/rpmbuild, and the test stack's S3 endpoint. The activities are
// called directly (outside a worker), and through MockActivityEnvironment for cancellation.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { runChecked } from '../../activities/exec/process';
import { createPackagingActivities } from '../../activities/packaging';
import { commitSample, type PushedCommit } from '../../cli/demo/sample-repo';
import type { BuiltinPackageSpec, DistroSpec, RepositorySpec, RepositorySteps } from '../../common/types';
import { parseS3Url } from '../../config/conveyor';
import { craftDeb } from '../helpers/packages';
import { awsFor, silentLogger, tempDir, testConfig, uid } from '../helpers/stack';

const DISTROS: Record<string, DistroSpec> = {
  bookworm: { format: 'deb', codename: 'bookworm', arch: 'amd64' },
  el9: { format: 'rpm', arch: 'x86_64' },
};

describe('package stage activities: buildPackages, buildDocs', () => {
  let s3: S3Client;
  let bucket: string;
  let prefix: string;
  let dir: string;
  let bare: string;
  let commit: PushedCommit;
  let acts: ReturnType<typeof createPackagingActivities>;

  beforeAll(async () => {
    dir = tempDir('packaging');
    bare = path.join(dir, 'widget.git');
    const config = testConfig([{ name: 'acme/widget', cloneUrl: bare, steps: {} }]);
    s3 = (await awsFor(config)).s3;
    ({ bucket, prefix } = parseS3Url(config.storage.artifacts));
    acts = createPackagingActivities({
      s3,
      artifactsBucket: bucket,
      artifactsPrefix: prefix,
      workspaceRoot: config.workspace,
    });
    commit = await commitSample(bare, path.join(dir, 'work'), { message: 'package me' });
  });

  const repository = (steps: RepositorySteps, extra: Partial<RepositorySpec> = {}): RepositorySpec => ({
    name: 'acme/widget',
    cloneUrl: bare,
    steps,
    distros: Object.keys(DISTROS),
    distroSpecs: DISTROS,
    channel: 'unstable',
    release: false,
    approval: false,
    supersede: true,
    publicUrls: { staging: 'http://127.0.0.1/staging', production: 'http://127.0.0.1/production' },
    stepTimeoutSeconds: 120,
    keepBuilds: 10,
    operatorWindowSeconds: 600,
    ...extra,
  });

  const packages = (steps: RepositorySteps, distro: string, build: number, extra: Partial<RepositorySpec> = {}) =>
    acts.buildPackages({
      pipelineId: `pipeline/acme/widget/main/${commit.sha}`,
      stageWorkflowId: `pipeline/acme/widget/main/${commit.sha}/package/${distro}#${uid()}`,
      repository: repository(steps, extra),
      branch: 'main',
      sha: commit.sha,
      distro,
      distroSpec: DISTROS[distro],
      build,
    });

  const docs = (steps: RepositorySteps, build: number) =>
    acts.buildDocs({
      pipelineId: `pipeline/acme/widget/main/${commit.sha}`,
      stageWorkflowId: `pipeline/acme/widget/main/${commit.sha}/package/docs#${uid()}`,
      repository: repository(steps),
      branch: 'main',
      sha: commit.sha,
      build,
    });

  const get = async (key: string) => {
    const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await obj.Body!.transformToByteArray());
  };
  const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
  const keysUnder = async (p: string) => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}${p}` }));
    return (r.Contents ?? []).map((o) => o.Key!).sort();
  };
  const failureOf = async (p: Promise<unknown>): Promise<ApplicationFailure> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  };
  /** Writes the downloaded package to disk for the format's own tools. */
  const saved = async (key: string) => {
    const file = path.join(dir, `${uid()}-${path.basename(key)}`);
    fs.writeFileSync(file, await get(key));
    return file;
  };

  it('builds the sample project as a .deb and an .rpm, validated and stored with their SHA-256', async () => {
    const deb = await packages({ package: 'make package' }, 'bookworm', 7);
    expect(deb.version).toBe('1.0.0');
    expect(deb.build).toBe(7);
    expect(deb.artifacts).toEqual([
      expect.objectContaining({
        key: `${prefix}packages/acme/widget/main/7/${commit.sha}/bookworm/widget_1.0.0-7_all.deb`,
        name: 'widget',
        version: '1.0.0-7',
        arch: 'all',
        format: 'deb',
        distro: 'bookworm',
        file: 'widget_1.0.0-7_all.deb',
        repository: 'acme/widget',
        branch: 'main',
        commit: commit.sha,
        build: 7,
      }),
    ]);
    const rpm = await packages({ package: 'make package' }, 'el9', 7);
    expect(rpm.artifacts).toEqual([
      expect.objectContaining({
        key: `${prefix}packages/acme/widget/main/7/${commit.sha}/el9/widget-1.0.0-7.noarch.rpm`,
        name: 'widget',
        version: '1.0.0-7',
        arch: 'noarch',
        format: 'rpm',
        file: 'widget-1.0.0-7.noarch.rpm',
      }),
    ]);
    for (const a of [...deb.artifacts, ...rpm.artifacts]) {
      const bytes = await get(a.key);
      expect(sha256(bytes)).toBe(a.sha256);
      expect(bytes.length).toBe(a.size);
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: a.key }));
      expect(head.Metadata).toMatchObject({
        sha256: a.sha256,
        repository: 'acme/widget',
        branch: 'main',
        commit: commit.sha,
        build: '7',
      });
    }
    const debFile = await saved(deb.artifacts[0].key);
    expect(await runChecked('dpkg-deb', ['--field', debFile, 'Version'])).toBe('1.0.0-7\n');
    // Beside the .deb, what the APT index needs from it (deb-index-facts.ts), named with its
    // SHA-256 in the reference: publishes copy the .deb without downloading it. rpms have none.
    const pointer = deb.artifacts[0].aptIndex!;
    expect(pointer.key).toBe(`${deb.artifacts[0].key}.apt-index.json`);
    const factsBytes = await get(pointer.key);
    expect(sha256(factsBytes)).toBe(pointer.sha256);
    const debBytes = fs.readFileSync(debFile);
    const hash = (alg: string) => crypto.createHash(alg).update(debBytes).digest('hex');
    expect(JSON.parse(factsBytes.toString())).toEqual({
      format: 'conveyor-apt-index/1',
      size: debBytes.length,
      md5: hash('md5'),
      sha1: hash('sha1'),
      sha256: deb.artifacts[0].sha256,
      sha512: hash('sha512'),
      control: expect.stringMatching(/^Package: widget\nVersion: 1\.0\.0-7\nArchitecture: all\n/) as string,
      files: expect.arrayContaining(['usr/bin/widget']) as string[],
    });
    expect(rpm.artifacts[0].aptIndex).toBeUndefined();
    expect(await runChecked('dpkg-deb', ['--contents', debFile])).toMatch(
      /-rwxr-xr-x root\/root .* \.\/usr\/bin\/widget\n/,
    );
    const rpmFile = await saved(rpm.artifacts[0].key);
    expect(await runChecked('rpm', ['-qp', '--queryformat', '%{VERSION} %{RELEASE}', rpmFile])).toBe('1.0.0 7');
    // No automatic requirements: only rpmlib's own.
    expect(
      (await runChecked('rpm', ['-qpR', rpmFile])).split('\n').filter((l) => l && !l.startsWith('rpmlib(')),
    ).toEqual([]);

    // The log is in the artifacts bucket under the stage's workflow ID, with Conveyor's notes.
    expect(deb.logKey).toMatch(/\/package\/bookworm#[0-9a-f]+\/package\.log$/);
    const log = (await get(deb.logKey)).toString();
    expect(log).toContain('$ make package');
    expect(log).toContain('conveyor: version 1.0.0 (from VERSION)');
    expect(log).toContain(`conveyor: stored widget_1.0.0-7_all.deb at ${deb.artifacts[0].key}`);
    expect(deb.tail).toContain("building package 'widget'");
  });

  it('keeps the stored objects when the same build runs again: same keys and SHA-256, nothing added', async () => {
    const first = await packages({ package: 'make package' }, 'bookworm', 8);
    const before = await keysUnder('packages/acme/widget/main/8/');
    const etag = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: first.artifacts[0].key }))).ETag;
    // A rebuild whose bytes differ (another file in the package) must still not replace the stored one.
    const again = await packages({ package: 'echo "# rebuilt" >> bin/widget && make package' }, 'bookworm', 8);
    expect(again.artifacts).toEqual(first.artifacts);
    expect(await keysUnder('packages/acme/widget/main/8/')).toEqual(before);
    // The .deb and its index facts, which the re-run names as they are (they describe the kept bytes).
    expect(before).toEqual([first.artifacts[0].key, first.artifacts[0].aptIndex!.key]);
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: first.artifacts[0].key }))).ETag).toBe(etag);
    expect((await get(again.logKey)).toString()).toContain('kept');
  });

  it('names no index facts for a kept .deb whose facts were never stored or do not describe it', async () => {
    const first = await packages({ package: 'make package' }, 'bookworm', 11);
    const [ref] = first.artifacts;
    const facts = JSON.parse((await get(ref.aptIndex!.key)).toString()) as Record<string, unknown>;
    // As if the attempt that stored the .deb died before its facts: the re-run keeps that .deb,
    // and its own bytes (a rebuild differs) must not be described in their place.
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: ref.aptIndex!.key }));
    const again = await packages({ package: 'echo "# rebuilt" >> bin/widget && make package' }, 'bookworm', 11);
    expect(again.artifacts).toEqual([{ ...ref, aptIndex: undefined }]);
    expect(await keysUnder('packages/acme/widget/main/11/')).toEqual([ref.key]);
    expect((await get(again.logKey)).toString()).toContain(
      'widget_1.0.0-11_all.deb: no index facts (none was stored); publishes will download it',
    );
    // Facts of other bytes at the key (damage, a hand-made object) are not named either.
    const otherSha = sha256(Buffer.from('other bytes'));
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: ref.aptIndex!.key,
        Body: JSON.stringify({ ...facts, sha256: otherSha }),
      }),
    );
    const third = await packages({ package: 'make package' }, 'bookworm', 11);
    expect(third.artifacts[0].aptIndex).toBeUndefined();
    expect((await get(third.logKey)).toString()).toContain(
      `widget_1.0.0-11_all.deb: no index facts (it describes ${otherSha} (${ref.size} bytes), not the reference's ${ref.sha256} (${ref.size} bytes))`,
    );
  });

  it('refuses a package whose version is not <version>-<build>, naming the file and both versions', async () => {
    const f = await failureOf(packages({ package: 'make package CONVEYOR_BUILD=99' }, 'bookworm', 9));
    expect(f.type).toBe('BadPackage');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('widget_1.0.0-99_all.deb');
    expect(f.message).toContain('1.0.0-99');
    expect(f.message).toContain('1.0.0-9');
    const rpm = await failureOf(packages({ package: 'make package CONVEYOR_BUILD=99' }, 'el9', 9));
    expect(rpm.type).toBe('BadPackage');
    expect(rpm.message).toMatch(/widget-1\.0\.0-99\.noarch\.rpm.*1\.0\.0-99.*1\.0\.0-9\b/);
    expect(await keysUnder('packages/acme/widget/main/9/')).toEqual([]);
  });

  it('refuses an .rpm for a deb distro, a garbage .deb and a garbage .rpm', async () => {
    const wrong = await failureOf(packages({ package: 'make package CONVEYOR_FORMAT=rpm' }, 'bookworm', 10));
    expect(wrong.type).toBe('BadPackage');
    expect(wrong.message).toMatch(/widget-1\.0\.0-10\.noarch\.rpm .*bookworm takes deb packages/);
    const garbage = await failureOf(packages({ package: 'echo garbage > "$CONVEYOR_OUT/x.deb"' }, 'bookworm', 10));
    expect(garbage.type).toBe('BadPackage');
    expect(garbage.message).toContain('x.deb');
    expect(garbage.message).toContain('is not a Debian format archive'); // dpkg-deb's own words
    const badRpm = await failureOf(packages({ package: 'echo /etc/passwd > "$CONVEYOR_OUT/x.rpm"' }, 'el9', 10));
    expect(badRpm.type).toBe('BadPackage');
    expect(badRpm.message).toMatch(/x\.rpm .*not a valid rpm package/);
    expect(await keysUnder('packages/acme/widget/main/10/')).toEqual([]);
  });

  it('fails clearly when the step leaves no package, naming the distro and format', async () => {
    const f = await failureOf(packages({ package: 'echo notes > "$CONVEYOR_OUT/README.txt"' }, 'el9', 11));
    expect(f.type).toBe('NoPackages');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('no rpm package for el9');
    expect(f.message).toContain('README.txt');
  });

  it('fails a failing package step with CommandFailed, its exit code, log key and tail', async () => {
    const f = await failureOf(packages({ package: 'echo "compiler says no"; exit 3' }, 'bookworm', 12));
    expect(f.type).toBe('CommandFailed');
    expect(f.nonRetryable).toBe(true);
    const details = f.details?.[0] as { step: string; exitCode: number; logKey: string; tail: string };
    expect(details).toMatchObject({ step: 'package', exitCode: 3 });
    expect(details.tail).toContain('compiler says no');
    expect((await get(details.logKey)).toString()).toContain('compiler says no');
  });

  it('builds valid packages with the built-in packager from a staged tree', async () => {
    const builtinPackage: BuiltinPackageSpec = {
      name: 'widget-builtin',
      maintainer: 'Acme Ops <ops@acme.invalid>',
      description: 'The widget, packaged by Conveyor (100% built in)',
      depends: { deb: ['coreutils (>= 8)'], rpm: ['coreutils'] },
    };
    const steps = { package: 'make install DESTDIR="$CONVEYOR_ROOT"' };
    const owned = { packages: ['widget', 'widget-builtin'] };
    const deb = await packages(steps, 'bookworm', 13, { builtinPackage, ...owned });
    expect(deb.artifacts.map((a) => [a.file, a.version, a.arch])).toEqual([
      ['widget-builtin_1.0.0-13_amd64.deb', '1.0.0-13', 'amd64'],
    ]);
    const debFile = await saved(deb.artifacts[0].key);
    const info = await runChecked('dpkg-deb', ['--info', debFile]);
    expect(info).toContain(' Package: widget-builtin\n');
    expect(info).toContain(' Version: 1.0.0-13\n');
    expect(info).toContain(' Architecture: amd64\n');
    expect(info).toContain(' Maintainer: Acme Ops <ops@acme.invalid>\n');
    expect(info).toContain(' Depends: coreutils (>= 8)\n');
    expect(info).toContain(' Description: The widget, packaged by Conveyor (100% built in)\n');
    const contents = await runChecked('dpkg-deb', ['--contents', debFile]);
    expect(contents).toMatch(/-rwxr-xr-x root\/root .* \.\/usr\/bin\/widget\n/);
    expect(contents).toMatch(/-rw-r--r-- root\/root .* \.\/usr\/share\/widget\/VERSION\n/);
    expect(contents).not.toContain('DEBIAN');

    const rpm = await packages(steps, 'el9', 13, { builtinPackage: { ...builtinPackage, arch: 'all' }, ...owned });
    expect(rpm.artifacts.map((a) => [a.file, a.version, a.arch])).toEqual([
      ['widget-builtin-1.0.0-13.noarch.rpm', '1.0.0-13', 'noarch'],
    ]);
    const rpmFile = await saved(rpm.artifacts[0].key);
    const rpmInfo = await runChecked('rpm', ['-qpi', rpmFile]);
    expect(rpmInfo).toMatch(/Name\s+: widget-builtin\n/);
    expect(rpmInfo).toMatch(/Version\s+: 1\.0\.0\n/);
    expect(rpmInfo).toMatch(/Release\s+: 13\n/);
    expect(rpmInfo).toMatch(/Architecture: noarch\n/);
    expect(rpmInfo).toContain('The widget, packaged by Conveyor (100% built in)');
    // Its own files and directory only, never /usr or /usr/bin.
    expect((await runChecked('rpm', ['-qpl', rpmFile])).trim().split('\n')).toEqual([
      '/usr/bin/widget',
      '/usr/share/widget',
      '/usr/share/widget/VERSION',
    ]);
    expect(
      await runChecked('rpm', ['-qp', '--queryformat', '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]', rpmFile]),
    ).toContain('-rwxr-xr-x root /usr/bin/widget');
    const requires = (await runChecked('rpm', ['-qpR', rpmFile]))
      .split('\n')
      .filter((l) => l && !l.startsWith('rpmlib('));
    expect(requires).toEqual(['coreutils']);

    // A value that would add a field to the control file is refused before dpkg-deb sees it.
    const bad = await failureOf(
      packages(steps, 'bookworm', 14, {
        builtinPackage: { ...builtinPackage, description: 'x\nEssential: yes' },
        ...owned,
      }),
    );
    expect(bad.type).toBe('BadConfig');
    expect(bad.message).toContain('packaging.builtin.description');
  });

  it('built-in packager: files under /etc are configuration files; `compression` picks the payload compressor', async () => {
    const builtinPackage: BuiltinPackageSpec = {
      name: 'widget-builtin',
      maintainer: 'Acme Ops <ops@acme.invalid>',
      description: 'The widget with a config file',
      depends: { deb: [], rpm: [] },
      compression: 'gzip',
    };
    const steps = {
      package:
        'make install DESTDIR="$CONVEYOR_ROOT" && mkdir -p "$CONVEYOR_ROOT/etc/widget" && ' +
        'echo "level: 1" > "$CONVEYOR_ROOT/etc/widget/widget.yml" && ln -s widget.yml "$CONVEYOR_ROOT/etc/widget/link.yml"',
    };
    const owned = { packages: ['widget', 'widget-builtin'] };
    const deb = await saved((await packages(steps, 'bookworm', 16, { builtinPackage, ...owned })).artifacts[0].key);
    // The members dpkg-deb wrote: control and data compressed with gzip, not xz.
    const members = (await runChecked('ar', ['t', deb])).trim().split('\n');
    expect(members).toEqual(['debian-binary', 'control.tar.gz', 'data.tar.gz']);
    const control = path.join(tempDir('builtin-control'), 'c');
    await runChecked('dpkg-deb', ['--control', deb, control]);
    // A regular file only: a symlink in /etc is not a conffile.
    expect(fs.readFileSync(path.join(control, 'conffiles'), 'utf8')).toBe('/etc/widget/widget.yml\n');

    const rpm = await saved((await packages(steps, 'el9', 16, { builtinPackage, ...owned })).artifacts[0].key);
    expect((await runChecked('rpm', ['-qp', '--queryformat', '%{PAYLOADCOMPRESSOR}', rpm])).trim()).toBe('gzip');
    expect((await runChecked('rpm', ['-qpc', rpm])).trim()).toBe('/etc/widget/widget.yml');

    // Without it, each tool's default: dpkg-deb's xz.
    const plain = await packages(steps, 'bookworm', 17, {
      builtinPackage: { ...builtinPackage, compression: undefined },
      ...owned,
    });
    expect((await runChecked('ar', ['t', await saved(plain.artifacts[0].key)])).trim().split('\n')).toEqual([
      'debian-binary',
      'control.tar.xz',
      'data.tar.xz',
    ]);
  });

  it('builds the docs once per build: files and manifest with their SHA-256, a re-run returns them unchanged', async () => {
    expect(await docs({ package: 'make package' }, 15)).toEqual({ docs: null });

    const first = await docs({ docs: 'make docs' }, 15);
    const ref = first.docs!;
    const docsPrefix = `docs/acme/widget/main/15/${commit.sha}/`;
    expect(ref).toEqual({
      manifestKey: `${prefix}${docsPrefix}manifest.json`,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      files: 2,
      version: '1.0.0-15',
      repository: 'acme/widget',
      branch: 'main',
      commit: commit.sha,
      build: 15,
    });
    const manifestBytes = await get(ref.manifestKey);
    expect(sha256(manifestBytes)).toBe(ref.sha256);
    const manifest = JSON.parse(manifestBytes.toString()) as {
      version: string;
      commit: string;
      files: { path: string; key: string; sha256: string; size: number }[];
    };
    expect(manifest).toMatchObject({ version: '1.0.0-15', repository: 'acme/widget', branch: 'main', build: 15 });
    expect(manifest.commit).toBe(commit.sha);
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: ref.manifestKey }))).Metadata).toMatchObject({
      commit: commit.sha,
      branch: 'main',
    });
    expect(manifest.files.map((f) => f.path)).toEqual(['examples.html', 'index.html']);
    for (const f of manifest.files) {
      expect(f.key).toBe(`${prefix}${docsPrefix}${f.path}`);
      const bytes = await get(f.key);
      expect(sha256(bytes)).toBe(f.sha256);
      expect(bytes.length).toBe(f.size);
    }
    expect((await get(`${prefix}${docsPrefix}index.html`)).toString()).toContain('widget 1.0.0-15');
    expect((await get(`${prefix}${docsPrefix}examples.html`)).toString()).toContain('$ widget add 2 3');
    const keys = await keysUnder(docsPrefix);
    expect(keys).toHaveLength(3);

    const again = await docs({ docs: 'make docs' }, 15);
    expect(again.docs).toEqual(ref);
    expect(await keysUnder(docsPrefix)).toEqual(keys);
    expect((await get(again.logKey!)).toString()).toContain('already stored');
  });

  it('versions a commit without a VERSION file from its tag, and refuses one with neither', async () => {
    const tagged = path.join(dir, 'tagged.git');
    const work = path.join(dir, 'tagged-work');
    const noVersion = (d: string) => fs.rmSync(path.join(d, 'VERSION'));
    const c1 = await commitSample(tagged, work, { message: 'untagged', mutate: noVersion });
    const steps = { package: 'echo "$CONVEYOR_VERSION" > VERSION && make package' };
    const run = (sha: string, build: number) =>
      acts.buildPackages({
        pipelineId: 'p',
        stageWorkflowId: `tagged/${uid()}`,
        repository: repository(steps, { name: 'acme/tagged', cloneUrl: tagged, packages: ['widget'] }),
        branch: 'main',
        sha,
        distro: 'bookworm',
        distroSpec: DISTROS.bookworm,
        build,
      });
    const none = await failureOf(run(c1.sha, 1));
    expect(none.type).toBe('VersionUnknown');
    expect(none.message).toContain('no VERSION file');

    const git = (...args: string[]) => runChecked('git', ['-C', work, ...args]);
    await git('tag', 'v2.3.0');
    await git('push', '--quiet', 'origin', 'v2.3.0');
    expect((await run(c1.sha, 2)).artifacts[0].version).toBe('2.3.0-2');
    const c2 = await commitSample(tagged, work, { message: 'after the tag', mutate: noVersion });
    const after = await run(c2.sha, 3);
    expect(after.version).toBe(`2.3.0+1.g${c2.sha.slice(0, 7)}`);
    expect(after.artifacts[0].file).toBe(`widget_2.3.0+1.g${c2.sha.slice(0, 7)}-3_all.deb`);
  });

  it('gives two branches with the same VERSION and build number their own keys, bytes and program', async () => {
    // An unreviewed branch of the same project: same VERSION file, and its own build 20 as main has.
    const feature = await commitSample(bare, path.join(dir, 'work-feature'), {
      branch: 'feature/fast-add',
      message: 'unreviewed change',
      mutate: (d) => fs.appendFileSync(path.join(d, 'bin/widget'), '# built from feature/fast-add\n'),
    });
    const onFeature = (distro: string) =>
      acts.buildPackages({
        pipelineId: `pipeline/acme/widget/feature/fast-add/${feature.sha}`,
        stageWorkflowId: `pipeline/acme/widget/feature/fast-add/${feature.sha}/package/${distro}#${uid()}`,
        repository: repository({ package: 'make package' }),
        branch: 'feature/fast-add',
        sha: feature.sha,
        distro,
        distroSpec: DISTROS[distro],
        build: 20,
      });
    for (const distro of ['bookworm', 'el9']) {
      const main = (await packages({ package: 'make package' }, distro, 20)).artifacts[0];
      const other = (await onFeature(distro)).artifacts[0];
      expect(other.version).toBe('1.0.0-20');
      expect(other.version).toBe(main.version);
      expect(other.file).toBe(main.file);
      // The branch is one encoded key segment: `/` cannot make another build's path.
      expect(other.key).toBe(
        `${prefix}packages/acme/widget/feature%2Ffast-add/20/${feature.sha}/${distro}/${other.file}`,
      );
      expect(main.key).toBe(`${prefix}packages/acme/widget/main/20/${commit.sha}/${distro}/${main.file}`);
      expect(other.sha256).not.toBe(main.sha256);
      expect(other).toMatchObject({ branch: 'feature/fast-add', commit: feature.sha, build: 20 });
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: other.key }))).Metadata).toMatchObject({
        branch: 'feature%2Ffast-add',
        commit: feature.sha,
      });
      // Each key holds its own branch's program.
      const program = async (key: string) => {
        const file = await saved(key);
        const root = path.join(dir, `x-${uid()}`);
        fs.mkdirSync(root);
        if (distro === 'bookworm') await runChecked('dpkg-deb', ['-x', file, root]);
        else await runChecked('sh', ['-c', 'rpm2archive - < "$1" | tar -xzf - -C "$2"', 'sh', file, root]);
        return fs.readFileSync(path.join(root, 'usr/bin/widget'), 'utf8');
      };
      expect(await program(other.key)).toContain('# built from feature/fast-add');
      expect(await program(main.key)).not.toContain('feature/fast-add');
    }
  });

  it('refuses to adopt an object at its key that another commit, or nobody, recorded', async () => {
    const planted = async (key: string, metadata?: Record<string, string>) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'planted bytes', Metadata: metadata }));
    const other = 'f'.repeat(40);
    const key = `${prefix}packages/acme/widget/main/21/${commit.sha}/bookworm/widget_1.0.0-21_all.deb`;
    await planted(key, { repository: 'acme/widget', branch: 'main', commit: other, build: '21' });
    const f = await failureOf(packages({ package: 'make package' }, 'bookworm', 21));
    expect(f.type).toBe('ArtifactMismatch');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(key);
    expect(f.message).toContain(`commit ${other}`);
    expect(f.message).toContain(`commit ${commit.sha}`);
    expect((await get(key)).toString()).toBe('planted bytes'); // refused, not replaced either

    const bare22 = `${prefix}packages/acme/widget/main/22/${commit.sha}/bookworm/widget_1.0.0-22_all.deb`;
    await planted(bare22);
    const none = await failureOf(packages({ package: 'make package' }, 'bookworm', 22));
    expect(none.type).toBe('ArtifactMismatch');
    expect(none.message).toMatch(/with no recorded commit, but this run builds acme\/widget branch "main" commit/);

    // The docs manifest: adopted only when it is this commit's, before the step even runs.
    const manifestKey = `${prefix}docs/acme/widget/main/23/${commit.sha}/manifest.json`;
    await planted(manifestKey, { repository: 'acme/widget', branch: 'main', commit: other, build: '23' });
    const d = await failureOf(docs({ docs: 'make docs' }, 23));
    expect(d.type).toBe('ArtifactMismatch');
    expect(d.message).toContain(`commit ${other}`);
    expect(d.message).toContain(manifestKey);
  });

  it('refuses to build a package name the repository does not own, naming both', async () => {
    const f = await failureOf(packages({ package: 'make package' }, 'bookworm', 24, { name: 'acme/tally' }));
    expect(f.type).toBe('PackageNotOwned');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(
      'package "widget" is not among acme/tally\'s packages (packages: [tally]); add it to the packages of acme/tally in conveyor.yml',
    );
    const listed = await failureOf(
      packages({ package: 'make package' }, 'el9', 24, { packages: ['widget-cli', 'widget-doc'] }),
    );
    expect(listed.type).toBe('PackageNotOwned');
    expect(listed.message).toContain(
      'package "widget" is not among acme/widget\'s packages (packages: [widget-cli, widget-doc])',
    );
    expect(await keysUnder('packages/acme/tally/')).toEqual([]);
    expect(await keysUnder('packages/acme/widget/main/24/')).toEqual([]);
  });

  it('refuses a .deb whose control file sets an index field or a bad field name, naming the field', async () => {
    // A hostile repository: its control file sets Filename (dpkg-deb builds that happily)…
    const hostile = await commitSample(bare, path.join(dir, 'work-hostile'), {
      branch: 'hostile',
      message: 'smuggle index fields',
      mutate: (d) =>
        fs.appendFileSync(
          path.join(d, 'packaging/control.in'),
          'Filename: ../../evil\nSHA256: ' + '0'.repeat(64) + '\n',
        ),
    });
    const run = (steps: RepositorySteps, sha: string, build: number) =>
      acts.buildPackages({
        pipelineId: `pipeline/acme/widget/hostile/${sha}`,
        stageWorkflowId: `pipeline/acme/widget/hostile/${sha}/package/bookworm#${uid()}`,
        repository: repository(steps),
        branch: 'hostile',
        sha,
        distro: 'bookworm',
        distroSpec: DISTROS.bookworm,
        build,
      });
    const f = await failureOf(run({ package: 'make package' }, hostile.sha, 25));
    expect(f.type).toBe('BadPackage');
    expect(f.message).toContain('widget_1.0.0-25_all.deb');
    expect(f.message).toContain('field "Filename"');

    // …and a .deb made by hand, whose control has `Bad Field:` (dpkg-deb would not build it).
    const crafted = await craftDeb(
      {
        name: 'widget',
        version: '1.0.0-26',
        arch: 'all',
        control:
          'Package: widget\nVersion: 1.0.0-26\nArchitecture: all\nMaintainer: x <x@x>\nBad Field: 1\nDescription: x\n',
      },
      { s3, bucket, distro: 'bookworm', dir: tempDir('craft') },
    );
    const handmade = await commitSample(bare, path.join(dir, 'work-hostile'), {
      branch: 'hostile',
      message: 'a hand-made package',
      mutate: (d) => fs.copyFileSync(crafted.path, path.join(d, 'evil.deb')),
    });
    const bad = await failureOf(
      run({ package: 'cp evil.deb "$CONVEYOR_OUT/widget_1.0.0-26_all.deb"' }, handmade.sha, 26),
    );
    expect(bad.type).toBe('BadPackage');
    expect(bad.message).toContain('bad field name "Bad Field"');
    expect(await keysUnder('packages/acme/widget/hostile/')).toEqual([]);
  });

  it('kills the step and everything it started when the activity is cancelled', async () => {
    // The step runs in its own PID namespace and sees none of our paths: its processes are found
    // on the host by a duration nothing else sleeps for.
    const marker = `300.${crypto.randomInt(1e6, 1e7)}`;
    const env = new MockActivityEnvironment(undefined, { logger: silent });
    const running = env
      .run(acts.buildPackages, {
        pipelineId: 'p',
        stageWorkflowId: `cancel/${uid()}`,
        repository: repository({ package: `sleep ${marker} & setsid sleep ${marker} & sleep ${marker}` }),
        branch: 'main',
        sha: commit.sha,
        distro: 'bookworm',
        distroSpec: DISTROS.bookworm,
        build: 16,
      })
      .then(
        () => 'finished',
        (e: unknown) => e,
      );
    const started = Date.now();
    while (liveWith(marker).length < 3) {
      if (Date.now() - started > 20000) throw new Error('the step did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    env.cancel();
    const outcome = await running;
    // Reported as Temporal's own cancellation, so the workflow sees the activity cancelled, not failed.
    expect(outcome).toBeInstanceOf(CancelledFailure);
    expect(liveWith(marker)).toEqual([]);
  });
});

const silent = silentLogger;

/** Live (not zombie) processes on the host whose command line holds `marker`, read from /proc. */
function liveWith(marker: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (!cmdline.includes(marker) || name === String(process.pid)) continue;
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state …; comm may hold spaces, so read after the last ')'.
      if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z') out.push(Number(name));
    } catch {
      continue;
    }
  }
  return out;
}
