// "The same bytes, staging to production" (issue 13), as a reader sees them: every deb and rpm a
// run's package stages recorded is fetched by real apt-get and dnf from the staging and the
// production repository, and every docs file from both docs sites over HTTP; each must hash to the
// SHA-256 the package stage recorded (and the artifacts bucket must hold exactly that file). The
// rpms must carry a signature by the published key (`rpm -K`), made once at package time.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { runChecked } from '../../activities/exec/process';
import type { DocsManifest } from '../../activities/packaging';
import { readObject } from '../../activities/packaging/store-object';
import type { AwsClients } from '../../activities/storage/s3';
import { stageId } from '../../common/ids';
import type { DocsRef, PipelineResult } from '../../common/types';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import type { DocsStageResult, PackageStageResult } from '../../workflows/stages/package';
import { aptClient, dnfClient } from './readers';
import { tempDir, testEnv } from './stack';

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

export interface SameBytesReport {
  /** `<environment> <file> <sha256>` for every file compared, for the test to assert on. */
  compared: string[];
  /** Files whose bytes differ from the recorded SHA-256: empty when the promise holds. */
  differing: string[];
}

export async function sameBytesReport(
  client: Client,
  aws: AwsClients,
  config: ConveyorConfig,
  workflowId: string,
  result: PipelineResult,
): Promise<SameBytesReport> {
  const artifacts = parseS3Url(config.storage.artifacts).bucket;
  const envs = {
    staging: { url: `${testEnv().aws}/${parseS3Url(config.storage.staging).bucket}`, published: result.published! },
    production: {
      url: `${testEnv().aws}/${parseS3Url(config.storage.production).bucket}`,
      published: result.promoted!,
    },
  };
  const compared: string[] = [];
  const differing: string[] = [];
  const compare = (where: string, file: string, bytes: Buffer, recorded: string) => {
    const got = sha256(bytes);
    compared.push(`${where} ${file} ${got}`);
    if (got !== recorded) differing.push(`${where} ${file}: ${got}, the package stage recorded ${recorded}`);
  };

  for (const repo of envs.staging.published.repositories) {
    const stage = (await client.workflow
      .getHandle(stageId(workflowId, 'package', repo.distro))
      .result()) as PackageStageResult;
    for (const a of stage.artifacts) {
      compare('artifacts', a.file, await readObject(aws.s3, artifacts, a.key), a.sha256);
      for (const [environment, env] of Object.entries(envs)) {
        const published = env.published.repositories.find((r) => r.distro === repo.distro)!;
        const dir = tempDir(`same-bytes-${environment}`);
        let file: string;
        if (a.format === 'deb') {
          const apt = await aptClient(
            dir,
            `${env.url}/${published.path}`,
            published.suite!,
            `${env.url}/keys/conveyor.asc`,
          );
          const update = await apt.update();
          if (update.exitCode !== 0) throw new Error(`apt-get update (${environment}): ${update.tail}`);
          const got = await apt.download(`${a.name}=${a.version}`);
          if (got.exitCode !== 0) throw new Error(`apt-get download (${environment}): ${got.tail}`);
          file = apt.file(a.file);
        } else {
          const dnf = dnfClient(dir, {
            baseUrl: `${env.url}/${published.path}`,
            keyUrl: `${env.url}/keys/conveyor.asc`,
          });
          const got = await dnf.download(`${a.name}-${a.version}`);
          if (got.exitCode !== 0) throw new Error(`dnf download (${environment}): ${got.tail}`);
          file = dnf.file(a.file);
          const db = path.join(dir, 'rpmdb');
          fs.writeFileSync(path.join(dir, 'key.asc'), await (await fetch(`${env.url}/keys/conveyor.asc`)).text());
          await runChecked('rpm', ['--dbpath', db, '--import', path.join(dir, 'key.asc')]);
          const checked = await runChecked('rpm', ['--dbpath', db, '-K', file]);
          if (!/digests signatures OK/.test(checked))
            differing.push(`${environment} ${a.file}: rpm -K says ${checked}`);
        }
        compare(environment, a.file, fs.readFileSync(file), a.sha256);
      }
    }
  }

  const docsStage = result.stages.some((s) => s.name === 'package' && s.distro === 'docs');
  if (docsStage) {
    const { docs } = (await client.workflow
      .getHandle(stageId(workflowId, 'package', 'docs'))
      .result()) as DocsStageResult;
    const ref = docs as DocsRef;
    const manifest = JSON.parse(
      (await readObject(aws.s3, artifacts, ref.manifestKey)).toString('utf8'),
    ) as DocsManifest;
    for (const [environment, env] of Object.entries(envs)) {
      // docs/<owner>/<repo>/<channel>/index.html → the version's site beside it.
      const site = `${path.posix.dirname(env.published.docs!)}/${ref.version}/`;
      for (const f of manifest.files) {
        const res = await fetch(`${env.url}/${site}${f.path}`);
        if (res.status !== 200) throw new Error(`${environment} ${site}${f.path}: HTTP ${res.status}`);
        compare(environment, `docs/${f.path}`, Buffer.from(await res.arrayBuffer()), f.sha256);
      }
    }
  }
  return { compared, differing };
}
