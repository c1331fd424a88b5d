// Docs sites published from a manifest in the artifacts bucket and read back over HTTP: the
// versioned site, the channel's redirect and current.json, a switch to another version, the
// refusals (tampered file, unsafe path), and a copy resumed from the last heartbeat.
import crypto from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import {
  createRepositoryActivities,
  type PublishDocsResult,
  type RepositoryActivities,
} from '../../activities/repository';
import type { DocsRef } from '../../common/types';
import { parseS3Url } from '../../config/conveyor';
import { testSigningKey } from '../helpers/packages';
import { awsFor, testConfig, testEnv, uid } from '../helpers/stack';

const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

describe('docs sites', () => {
  let s3: S3Client;
  let artifactsBucket: string;
  let bucket: string;
  let http: string;
  let acts: RepositoryActivities;

  /** Stores files and their manifest in the artifacts bucket, as the package stage does. */
  async function storeSite(version: string, files: Record<string, string>, manifestPaths?: string[]): Promise<DocsRef> {
    const entries = await Promise.all(
      Object.entries(files).map(async ([p, body], i) => {
        const key = `docs-build/${uid()}/${sha256(body)}`;
        await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: key, Body: body }));
        return { path: manifestPaths?.[i] ?? p, key, sha256: sha256(body), size: Buffer.byteLength(body) };
      }),
    );
    const manifest = JSON.stringify({ version, files: entries });
    const manifestKey = `docs-build/${uid()}/manifest.json`;
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: manifestKey, Body: manifest }));
    return { manifestKey, sha256: sha256(manifest), files: entries.length, version };
  }

  const site = (v: string) => ({
    'index.html': `<html><body>widget ${v}</body></html>`,
    'guide/install.html': `<p>install ${v}</p>`,
    'assets/style.css': 'body { color: #333 }',
  });

  beforeAll(async () => {
    const config = testConfig([]);
    s3 = (await awsFor(config)).s3;
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    const staging = parseS3Url(config.storage.staging).bucket;
    bucket = staging;
    http = `${testEnv().aws}/${staging}`;
    const key = await testSigningKey();
    acts = createRepositoryActivities({
      s3,
      artifactsBucket,
      buckets: { staging, production: parseS3Url(config.storage.production).bucket },
      signingKey: () => key,
    });
  });

  it('publishes a versioned site, points the channel at it, and switches to the next version', async () => {
    const v1 = await storeSite('1.0.0-1', site('1.0.0-1'));
    const r = await acts.publishDocs({
      environment: 'staging',
      repository: 'acme/widget',
      channel: 'unstable',
      docs: v1,
    });
    expect(r).toMatchObject({
      changed: true,
      sitePath: 'docs/acme/widget/unstable/1.0.0-1/',
      indexPath: 'docs/acme/widget/unstable/index.html',
      currentPath: 'docs/acme/widget/unstable/current.json',
      files: 3,
    });
    expect(r.copied.sort()).toEqual([
      'docs/acme/widget/unstable/1.0.0-1/assets/style.css',
      'docs/acme/widget/unstable/1.0.0-1/guide/install.html',
      'docs/acme/widget/unstable/1.0.0-1/index.html',
    ]);
    const page = await fetch(`${http}/docs/acme/widget/unstable/1.0.0-1/guide/install.html`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toBe('<p>install 1.0.0-1</p>');

    // Follow the channel's redirect the way a browser resolves it.
    const follow = async () => {
      const indexUrl = `${http}/${r.indexPath}`;
      const redirect = await (await fetch(indexUrl)).text();
      const target = /http-equiv="refresh" content="0; url=([^"]+)"/.exec(redirect)![1];
      return (await fetch(new URL(target, indexUrl))).text();
    };
    expect(await follow()).toBe('<html><body>widget 1.0.0-1</body></html>');
    const current = (await (await fetch(`${http}/${r.currentPath}`)).json()) as { version: string; path: string };
    expect(current).toMatchObject({ version: '1.0.0-1', path: './1.0.0-1/' });

    const again = await acts.publishDocs({
      environment: 'staging',
      repository: 'acme/widget',
      channel: 'unstable',
      docs: v1,
    });
    expect(again).toMatchObject({ changed: false, copied: [], removed: [] });

    const v2 = await storeSite('1.0.0-2', site('1.0.0-2'));
    const next = await acts.publishDocs({
      environment: 'staging',
      repository: 'acme/widget',
      channel: 'unstable',
      docs: v2,
    });
    expect(next.changed).toBe(true);
    expect(await follow()).toBe('<html><body>widget 1.0.0-2</body></html>');
    expect(((await (await fetch(`${http}/${r.currentPath}`)).json()) as { version: string }).version).toBe('1.0.0-2');
    // The older version stays readable for links that name it.
    expect((await fetch(`${http}/docs/acme/widget/unstable/1.0.0-1/index.html`)).status).toBe(200);
  });

  it("refuses another commit's site under a published version of the channel, naming both commits", async () => {
    const commitA = 'a'.repeat(40);
    const commitB = 'b'.repeat(40);
    const fromMain = { ...(await storeSite('1.0.0-1', site('main'))), commit: commitA, branch: 'main', build: 1 };
    const fromFeature = {
      ...(await storeSite('1.0.0-1', site('feature'))),
      commit: commitB,
      branch: 'feature',
      build: 1,
    };
    const input = { environment: 'staging' as const, repository: 'acme/twice', channel: 'unstable' };
    await acts.publishDocs({ ...input, docs: fromMain });
    const err = await acts.publishDocs({ ...input, docs: fromFeature }).catch((e: unknown) => e as ApplicationFailure);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('ArtifactConflict');
    expect((err as ApplicationFailure).message).toContain(`published from commit ${commitA} (main)`);
    expect((err as ApplicationFailure).message).toContain(`commit ${commitB} (feature) built other docs`);
    expect(await (await fetch(`${http}/docs/acme/twice/unstable/1.0.0-1/index.html`)).text()).toContain('widget main');
    // The same version in another channel is another site (the demo's main and release branches).
    await acts.publishDocs({ ...input, channel: 'stable', docs: fromFeature });
    expect(await (await fetch(`${http}/docs/acme/twice/stable/1.0.0-1/index.html`)).text()).toContain('widget feature');
  });

  it('restores a file of a published site that went missing, and only that one', async () => {
    const v = await storeSite('1.5.0-1', site('1.5.0-1'));
    const input = { environment: 'staging' as const, repository: 'acme/heal', channel: 'unstable', docs: v };
    await acts.publishDocs(input);
    const lost = 'docs/acme/heal/unstable/1.5.0-1/guide/install.html';
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: lost }));
    const r = await acts.publishDocs(input);
    expect(r).toMatchObject({ changed: true, copied: [lost], removed: [] });
    expect(await (await fetch(`${http}/${lost}`)).text()).toBe('<p>install 1.5.0-1</p>');
  });

  it('refuses a file whose bytes differ from the manifest, and leaves the channel alone', async () => {
    const good = await storeSite('2.0.0-1', site('2.0.0-1'));
    await acts.publishDocs({ environment: 'staging', repository: 'acme/tamper', channel: 'stable', docs: good });
    const bad = await storeSite('2.0.0-2', site('2.0.0-2'));
    const manifest = await (
      await s3.send(new GetObjectCommand({ Bucket: artifactsBucket, Key: bad.manifestKey }))
    ).Body!.transformToString();
    const victim = (JSON.parse(manifest) as { files: { key: string; size: number }[] }).files[0];
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: victim.key, Body: 'x'.repeat(victim.size) }));
    const err = await acts
      .publishDocs({ environment: 'staging', repository: 'acme/tamper', channel: 'stable', docs: bad })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('ArtifactMismatch');
    const current = (await (await fetch(`${http}/docs/acme/tamper/stable/current.json`)).json()) as { version: string };
    expect(current.version).toBe('2.0.0-1');
  });

  it('refuses paths that would leave the site', async () => {
    const evil = await storeSite('3.0.0-1', { 'index.html': 'ok', 'x.html': 'evil' }, [
      'index.html',
      '../../other/x.html',
    ]);
    const err = await acts
      .publishDocs({ environment: 'staging', repository: 'acme/evil', channel: 'unstable', docs: evil })
      .catch((e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('BadDocs');
    expect((err as ApplicationFailure).message).toMatch(/not a safe relative path/);
    expect((await fetch(`${http}/docs/acme/other/x.html`)).status).not.toBe(200);
  });

  it('resumes a copy from the last heartbeat of the previous attempt', async () => {
    const files: Record<string, string> = { 'index.html': 'home' };
    for (let i = 0; i < 24; i++) files[`p/${String(i).padStart(2, '0')}.html`] = `page ${i}`;
    const docs = await storeSite('4.0.0-1', files);
    const input = { environment: 'staging' as const, repository: 'acme/big', channel: 'unstable', docs };

    const logger = new DefaultLogger('ERROR');
    const first = new MockActivityEnvironment(undefined, { logger });
    let progress: { phase?: string; done?: number } | undefined;
    first.on('heartbeat', (d: { phase?: string; done?: number }) => {
      if (d.phase === 'copy' && !progress) {
        progress = d;
        first.cancel();
      }
    });
    await expect(first.run(acts.publishDocs, input)).rejects.toThrow();
    expect(progress?.done).toBeGreaterThan(0);
    expect((await fetch(`${http}/docs/acme/big/unstable/index.html`)).status).not.toBe(200);

    const second = new MockActivityEnvironment({ heartbeatDetails: progress }, { logger });
    const r: PublishDocsResult = await second.run(acts.publishDocs, input);
    expect(r.copied).toHaveLength(25 - progress!.done!);
    expect(await (await fetch(`${http}/docs/acme/big/unstable/4.0.0-1/p/23.html`)).text()).toBe('page 23');
    expect((await fetch(`${http}/docs/acme/big/unstable/index.html`)).status).toBe(200);
  });
});
