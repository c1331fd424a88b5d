// The chain through staging publish, from a signed push: test → build number → package (deb and
// rpm, plus docs) → publish; then real apt-get and dnf install-read the exact version from the
// staging repositories over HTTP, and the docs site names the version.
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import type { Client } from '@temporalio/client';
import pino from 'pino';
import { createApiServer, listen } from '../../api/server';
import { commitSample } from '../../cli/demo/sample-repo';
import { pushPayload, sendWebhook } from '../../cli/webhook-client';
import { BuildKey } from '../../common/search-attributes';
import type { PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { runChecked } from '../../activities/exec/process';
import { aptClient, dnfClient } from '../helpers/readers';
import { sameBytesReport } from '../helpers/same-bytes';
import type { AwsClients } from '../../activities/storage/s3';
import { awsFor, clientFor, DEB_AND_RPM, startWorkers, tempDir, testConfig, testEnv } from '../helpers/stack';

const SECRET = 'chain-secret';

describe('chain: push → test → package → publish (staging)', () => {
  let config: ConveyorConfig;
  let aws: AwsClients;
  let client: Client;
  let server: http.Server;
  let apiUrl: string;
  let workers: { stop(): Promise<void> };
  let bare: string;
  let work: string;
  let bucketUrl: string;
  let deb: string;
  let rpm: string;

  beforeAll(async () => {
    const dir = tempDir('chain');
    bare = path.join(dir, 'widget.git');
    work = path.join(dir, 'work');
    config = testConfig(
      [
        {
          name: 'acme/chain',
          cloneUrl: bare,
          steps: { unit: 'make test', integration: 'make integration', package: 'make package', docs: 'make docs' },
          // The sample project builds `widget`, not the default `chain`.
          more: { packages: ['widget'] },
        },
      ],
      {},
      DEB_AND_RPM,
    );
    [deb, rpm] = Object.keys(config.distros);
    aws = await awsFor(config);
    client = await clientFor(config);
    workers = await startWorkers(config);
    server = createApiServer({ config, client, logger: pino({ level: 'silent' }), secret: SECRET });
    apiUrl = `http://127.0.0.1:${await listen(server, 0)}`;
    bucketUrl = `${testEnv().aws}/${parseS3Url(config.storage.staging).bucket}`;
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await workers?.stop();
    await client?.connection.close();
  });

  async function pushAndWait(message: string): Promise<{ id: string; result: PipelineResult }> {
    const commit = await commitSample(bare, work, { message });
    const res = await sendWebhook(
      apiUrl,
      SECRET,
      'push',
      pushPayload({ repository: 'acme/chain', branch: 'main', sha: commit.sha, before: commit.before }),
    );
    expect(res.status).toBe(202);
    const id = res.body.workflowId as string;
    return { id, result: (await client.workflow.getHandle(id).result()) as PipelineResult };
  }

  it('publishes the build to signed apt and yum repositories that real clients read', async () => {
    const { id, result } = await pushAndWait('first release candidate');
    expect(result.status).toBe('succeeded');
    expect(result.build).toBe(1);
    expect(result.version).toBe('1.0.0-1');
    expect(result.stages.map((s) => `${s.name}${s.distro ? '/' + s.distro : ''}:${s.state}`)).toEqual([
      'test:succeeded',
      `package/${deb}:succeeded`,
      `package/${rpm}:succeeded`,
      'package/docs:succeeded',
      'publish:succeeded',
      'promote:succeeded',
    ]);
    // main goes on to production `unstable`, without a release tag.
    expect(result.promoted).toMatchObject({ environment: 'production', channel: 'unstable' });
    expect((await runChecked('git', ['ls-remote', '--tags', bare])).trim()).toBe('');
    expect((await client.workflow.getHandle(id).describe()).typedSearchAttributes.get(BuildKey)).toBe(1);

    const debRepo = result.published!.repositories.find((r) => r.distro === deb)!;
    const apt = await aptClient(
      tempDir('apt'),
      `${bucketUrl}/${debRepo.path}`,
      'bookworm-unstable',
      `${bucketUrl}/keys/conveyor.asc`,
    );
    const update = await apt.update();
    expect(update.output).not.toMatch(/^(W|E):/m);
    expect(update.exitCode).toBe(0);
    const got = await apt.download('widget=1.0.0-1');
    expect(got.exitCode).toBe(0);
    expect(fs.existsSync(apt.file('widget_1.0.0-1_all.deb'))).toBe(true);

    const rpmRepo = result.published!.repositories.find((r) => r.distro === rpm)!;
    const dnf = dnfClient(tempDir('dnf'), {
      baseUrl: `${bucketUrl}/${rpmRepo.path}`,
      keyUrl: `${bucketUrl}/keys/conveyor.asc`,
    });
    expect((await dnf.makecache()).exitCode).toBe(0);
    expect((await dnf.download('widget-1.0.0-1')).exitCode).toBe(0);
    expect(fs.existsSync(dnf.file('widget-1.0.0-1.noarch.rpm'))).toBe(true);
    // Installed with gpgcheck=1: the rpm itself is signed with the published key.
    expect((await dnf.install('widget-1.0.0-1')).exitCode).toBe(0);
    expect((await dnf.installed('widget')).output.trim()).toBe('widget-1.0.0-1.noarch');

    const docs = await fetch(`${bucketUrl}/${result.published!.docs}`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/1\.0\.0-1/);

    // The same bytes everywhere: production's deb, rpm and docs files are staging's, which are
    // the ones the package stages recorded (the rpm signed once, at package time).
    const same = await sameBytesReport(client, aws, config, id, result);
    expect(same.differing).toEqual([]);
    const rpmFile = 'widget-1.0.0-1.noarch.rpm';
    const shaOf = (where: string, file: string) =>
      same.compared.find((c) => c.startsWith(`${where} ${file} `))?.split(' ')[2];
    for (const file of ['widget_1.0.0-1_all.deb', rpmFile, 'docs/index.html']) {
      expect(shaOf('production', file)).toMatch(/^[0-9a-f]{64}$/);
      expect(shaOf('production', file)).toBe(shaOf('staging', file));
    }
    expect(shaOf('artifacts', rpmFile)).toBe(shaOf('production', rpmFile));
    const packagedRpm = (await client.workflow.getHandle(`${id}/package/${rpm}`).result()) as {
      artifacts: { signer?: string; unsigned?: { sha256: string } }[];
    };
    expect(packagedRpm.artifacts[0].signer).toMatch(/^[0-9A-F]{40}$/);
    expect(packagedRpm.artifacts[0].unsigned?.sha256).not.toBe(shaOf('production', rpmFile));
  });

  it('two commits pushed at once: the newer reaches production; the older is published or superseded, never newer', async () => {
    const c1 = await commitSample(bare, work, { message: 'concurrent one' });
    const c2 = await commitSample(bare, work, { message: 'concurrent two' });
    const deliveries = await Promise.all(
      [c1, c2].map((c) =>
        sendWebhook(apiUrl, SECRET, 'push', pushPayload({ repository: 'acme/chain', branch: 'main', sha: c.sha })),
      ),
    );
    const [older, newer] = (await Promise.all(
      deliveries.map((d) => client.workflow.getHandle(d.body.workflowId as string).result()),
    )) as PipelineResult[];
    // The newer commit (c2, a descendant of c1) always reaches production. The older one either
    // drew the lower build number (then both publish to staging, and it is superseded at promote
    // if the newer one got there first) or the higher one (then it ends superseded before it
    // packages: older code never gets the higher version).
    expect(newer.status).toBe('succeeded');
    expect(['succeeded', 'superseded']).toContain(older.status);
    const olderPublished = older.build! < newer.build!;
    if (olderPublished) {
      if (older.status === 'superseded') expect(older.stages.find((s) => s.name === 'promote')?.state).toBe('skipped');
    } else {
      expect(older.status).toBe('superseded');
      const packaging = older.stages.filter((s) => s.name === 'package');
      expect(packaging.length).toBeGreaterThan(0);
      expect(packaging.filter((s) => s.state !== 'skipped')).toEqual([]);
      expect(older.published).toBeUndefined();
    }
    // Production's channel offers the newer commit's version (it never moved back).
    const production = `${testEnv().aws}/${parseS3Url(config.storage.production).bucket}`;
    const prodRepo = newer.promoted!.repositories.find((r) => r.distro === deb)!;
    const prodPackages = await (
      await fetch(`${production}/${prodRepo.path}/dists/bookworm-unstable/main/binary-amd64/Packages`)
    ).text();
    expect(prodPackages).toContain(`Version: ${newer.version}`);
    const apt = await aptClient(
      tempDir('apt-prod'),
      `${production}/${prodRepo.path}`,
      'bookworm-unstable',
      `${production}/keys/conveyor.asc`,
    );
    expect((await apt.update()).exitCode).toBe(0);
    const policy = await apt.policy('widget');
    expect(policy.output).toContain(`Candidate: ${newer.version}`);
    // Staging holds every version that was published, readable by apt-get and dnf.
    const versions = [newer, ...(olderPublished ? [older] : [])].map((r) => r.version!);
    const debRepo = newer.published!.repositories.find((r) => r.distro === deb)!;
    const packages = await (
      await fetch(`${bucketUrl}/${debRepo.path}/dists/bookworm-unstable/main/binary-amd64/Packages`)
    ).text();
    for (const v of versions) expect(packages).toContain(`Version: ${v}`);
    const rpmRepo = newer.published!.repositories.find((r) => r.distro === rpm)!;
    const dnf = dnfClient(tempDir('dnf2'), {
      baseUrl: `${bucketUrl}/${rpmRepo.path}`,
      keyUrl: `${bucketUrl}/keys/conveyor.asc`,
    });
    expect((await dnf.makecache()).exitCode).toBe(0);
    for (const v of versions) {
      expect((await dnf.download(`widget-${v}`)).exitCode).toBe(0);
      expect(fs.existsSync(dnf.file(`widget-${v}.noarch.rpm`))).toBe(true);
    }
  });
});
