// Tiny real packages for the repository tests: a .deb built with dpkg-deb and a noarch .rpm built
// with rpmbuild (no scripts, so it has no /bin/sh requirement and installs into an empty root),
// uploaded to the artifacts bucket under a content-addressed key like the package stage stores
// them. Also the signing keys the publishing tests use.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { runChecked } from '../../activities/exec/process';
import {
  createRepositoryActivities,
  generateSigningKey,
  type PublishPackagesInput,
  type PublishPackagesResult,
  type RepositoryDeps,
  type RepositoryActivities,
} from '../../activities/repository';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { ArtifactRef, BuildIdentity } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { tempDir, testEnv, uid } from './stack';

export interface ArtifactTarget {
  s3: S3Client;
  /** The artifacts bucket. */
  bucket: string;
  /** The distro name the artifact is built for (ArtifactRef.distro). */
  distro: string;
  /** A scratch directory for the build. */
  dir: string;
  /** The build identity the reference records (repository, branch, commit, build), as the package
   * stage sets it; absent like in references of older runs. */
  identity?: BuildIdentity;
}

export interface TestArtifact extends ArtifactRef {
  /** The built file on disk. */
  path: string;
}

async function upload(
  target: ArtifactTarget,
  file: string,
  ref: Omit<ArtifactRef, 'key' | 'sha256' | 'size' | 'distro'>,
): Promise<TestArtifact> {
  const bytes = fs.readFileSync(file);
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  const key = `packages/${target.distro}/${sha256}/${ref.file}`;
  await target.s3.send(new PutObjectCommand({ Bucket: target.bucket, Key: key, Body: bytes }));
  return { ...ref, ...target.identity, key, sha256, size: bytes.length, distro: target.distro, path: file };
}

/**
 * A .deb assembled by hand (ar + tar, as dpkg-deb lays it out) with exactly `control` as its
 * control file: dpkg-deb --build refuses some hostile control files (`Bad Field:`), a package
 * made elsewhere need not. Reference name, version and arch are what it claims to be.
 */
export async function craftDeb(
  spec: { name: string; version: string; arch: string; control: string },
  target: ArtifactTarget,
): Promise<TestArtifact> {
  const work = path.join(target.dir, `craft-${uid()}`);
  fs.mkdirSync(path.join(work, 'ctl'), { recursive: true });
  fs.mkdirSync(path.join(work, 'data/usr/share', spec.name), { recursive: true });
  fs.writeFileSync(path.join(work, 'data/usr/share', spec.name, 'VERSION'), `${spec.version}\n`);
  fs.writeFileSync(path.join(work, 'ctl/control'), spec.control);
  fs.writeFileSync(path.join(work, 'debian-binary'), '2.0\n');
  const tar = (out: string, dir: string, what: string) =>
    runChecked('tar', ['--owner=0', '--group=0', '-czf', path.join(work, out), '-C', path.join(work, dir), what]);
  await tar('control.tar.gz', 'ctl', './control');
  await tar('data.tar.gz', 'data', '.');
  const file = `${spec.name}_${spec.version}_${spec.arch}.deb`;
  const out = path.join(target.dir, file);
  fs.rmSync(out, { force: true });
  // Member order matters: debian-binary, then control, then data.
  await runChecked('ar', ['rc', out, 'debian-binary', 'control.tar.gz', 'data.tar.gz'], { cwd: work });
  return upload(target, out, { name: spec.name, version: spec.version, arch: spec.arch, format: 'deb', file });
}

export async function buildTestDeb(
  spec: {
    name: string;
    version: string;
    arch: string;
    description?: string;
    /** Adds `usr/share/<name>/payload` of this many random (incompressible) bytes. */
    payloadBytes?: number;
  },
  target: ArtifactTarget,
): Promise<TestArtifact> {
  const root = path.join(target.dir, `deb-${uid()}`);
  fs.mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr/share', spec.name), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr/share', spec.name, 'VERSION'), `${spec.version}\n`);
  if (spec.payloadBytes) {
    fs.writeFileSync(path.join(root, 'usr/share', spec.name, 'payload'), crypto.randomBytes(spec.payloadBytes));
  }
  fs.writeFileSync(
    path.join(root, 'DEBIAN/control'),
    [
      `Package: ${spec.name}`,
      `Version: ${spec.version}`,
      `Architecture: ${spec.arch}`,
      'Maintainer: Conveyor Tests <tests@example.com>',
      'Section: misc',
      'Priority: optional',
      `Description: ${spec.description ?? `test package ${spec.name}`}`,
      ' Built by test/helpers/packages.ts.',
      ' .',
      ' A second paragraph, to keep multi-line fields honest.',
      '',
    ].join('\n'),
  );
  const file = `${spec.name}_${spec.version.replace(/^\d+:/, '')}_${spec.arch}.deb`;
  const out = path.join(target.dir, file);
  await runChecked('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, out]);
  return upload(target, out, { name: spec.name, version: spec.version, arch: spec.arch, format: 'deb', file });
}

export async function buildTestRpm(
  spec: {
    name: string;
    version: string;
    release: string;
    arch?: 'noarch';
    /** Spec-file text (rpm macros such as `%(printf …)` expand). */
    summary?: string;
    description?: string;
  },
  target: ArtifactTarget,
): Promise<TestArtifact> {
  const top = path.join(target.dir, `rpm-${uid()}`);
  fs.mkdirSync(path.join(top, 'SPECS'), { recursive: true });
  const specFile = path.join(top, 'SPECS', `${spec.name}.spec`);
  fs.writeFileSync(
    specFile,
    [
      `Name: ${spec.name}`,
      `Version: ${spec.version}`,
      `Release: ${spec.release}`,
      `Summary: ${spec.summary ?? `test package ${spec.name}`}`,
      'License: MIT',
      'BuildArch: noarch',
      '%description',
      spec.description ?? 'Built by test/helpers/packages.ts.',
      '%install',
      `mkdir -p %{buildroot}/usr/share/${spec.name}`,
      `echo ${spec.version}-${spec.release} > %{buildroot}/usr/share/${spec.name}/VERSION`,
      '%files',
      `/usr/share/${spec.name}/VERSION`,
      '',
    ].join('\n'),
  );
  await runChecked('rpmbuild', [
    '--define',
    `_topdir ${top}`,
    '--define',
    '__os_install_post %{nil}',
    '--quiet',
    '-bb',
    specFile,
  ]);
  const file = `${spec.name}-${spec.version}-${spec.release}.noarch.rpm`;
  const out = path.join(target.dir, file);
  fs.copyFileSync(path.join(top, 'RPMS', 'noarch', file), out);
  return upload(target, out, {
    name: spec.name,
    version: `${spec.version}-${spec.release}`,
    arch: 'noarch',
    format: 'rpm',
    file,
  });
}

/** The test run's shared signing key (conveyor.yml `signing.keyFile` of testConfig), made on first use. */
export async function testSigningKey(): Promise<string> {
  const file = testEnv().signingKey;
  if (!fs.existsSync(file)) {
    await generateSigningKey(file, 'Conveyor tests <conveyor-tests@localhost>').catch((err: Error) => {
      // Another test file, in another jest worker, made it first.
      if (!fs.existsSync(file)) throw err;
    });
  }
  return fs.readFileSync(file, 'utf8');
}

/** The publishing activities on a test config's buckets, signing with the test key, and a deb
 * target in its artifacts bucket: what the publishing tests share. `o` adds to the activities' deps. */
export async function testPublisher(
  config: ConveyorConfig,
  s3: S3Client,
  name: string,
  o: Partial<RepositoryDeps> = {},
): Promise<{ acts: RepositoryActivities; artifactsBucket: string; bucket: string; target: ArtifactTarget }> {
  const artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
  const bucket = parseS3Url(config.storage.staging).bucket;
  const key = await testSigningKey();
  const acts = createRepositoryActivities({
    s3,
    artifactsBucket,
    buckets: { staging: bucket, production: parseS3Url(config.storage.production).bucket },
    signingKey: () => key,
    workDir: tempDir(`${name}-work`),
    ...o,
  });
  return {
    acts,
    artifactsBucket,
    bucket,
    target: { s3, bucket: artifactsBucket, distro: 'bookworm', dir: tempDir(`${name}-deb`) },
  };
}

/** A new signing key of its own (a second key for "signed by the wrong key" tests). */
export async function otherSigningKey(dir: string, name: string): Promise<string> {
  const file = path.join(dir, `${name}-${uid()}.asc`);
  await generateSigningKey(file, `${name} <${name}@localhost>`);
  return fs.readFileSync(file, 'utf8');
}

/** Runs a publish as an activity (its log captured): the result and the log's lines, joined. */
export async function publishLogged(
  acts: RepositoryActivities,
  input: PublishPackagesInput,
): Promise<{ result: PublishPackagesResult; log: string }> {
  const lines: string[] = [];
  const env = new MockActivityEnvironment(undefined, {
    logger: new DefaultLogger('INFO', (entry) => lines.push(entry.message)),
  });
  const result = await env.run<[PublishPackagesInput], PublishPackagesResult, RepositoryActivities['publishPackages']>(
    acts.publishPackages,
    input,
  );
  return { result, log: lines.join('\n') };
}
