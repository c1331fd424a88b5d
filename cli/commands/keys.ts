// `conveyor keys rotate [--finish]`: a signing-key rotation with an overlap (README "Rotating the
// signing key"). The key set comes from the config the orchestrator runs with: `signing.keyFile`
// (the current key, which signs rpms) plus `signing.nextKeyFile` while a rotation overlaps. This
// command re-signs the live index of every channel (apt InRelease/Release.gpg, yum repomd.xml.asc)
// and publishes the public keys, through the resignReleases workflow on the orchestrator's queue,
// under each channel's publish lock; a publish signs the same way, so channels stay consistent.
// Without it, a channel nobody publishes to would keep the old signatures past the key change.
import crypto from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { Command } from 'commander';
import { PUBLIC_KEY_PATH, createRepoStore } from '../../activities/repository';
import { publicKeyFingerprints } from '../../activities/repository/gpg';
import { createAwsClients } from '../../activities/storage/s3';
import { keysRotateId } from '../../common/ids';
import { parseS3Url, type ConveyorConfig } from '../../config/conveyor';
import { resignTargets } from '../../workers/resign-schedule';
import type { ResignReleasesResult, resignReleases } from '../../workflows/resign-releases';
import { commandConfig, withClient } from './context';

export interface RotateKeysResult extends ResignReleasesResult {
  workflowId: string;
  /** The fingerprints in each environment's published `keys/conveyor.asc` afterwards. */
  published: { environment: 'staging' | 'production'; fingerprints: string[] }[];
}

/** Re-signs every channel with the configured key set; `finish` checks that the rotation's next
 * key has been made the signing key first. */
export async function rotateKeys(config: ConveyorConfig, o: { finish?: boolean } = {}): Promise<RotateKeysResult> {
  const next = Boolean(config.signing?.nextKeyFile || config.signing?.nextKeyEnv);
  if (o.finish && next) {
    throw new Error(
      'signing.nextKeyFile/nextKeyEnv is still set: to finish, move it to signing.keyFile/keyEnv, remove ' +
        'nextKeyFile/nextKeyEnv, restart the orchestrator with that config, then run `conveyor keys rotate --finish`',
    );
  }
  if (!o.finish && !next) {
    throw new Error(
      'no rotation under way: set signing.nextKeyFile (or nextKeyEnv) to the new key, restart the orchestrator ' +
        'with that config, then run `conveyor keys rotate` (README "Rotating the signing key")',
    );
  }
  const workflowId = keysRotateId(crypto.randomBytes(6).toString('hex'));
  const result = await withClient(config, async (client) => {
    const handle = await client.workflow.start<typeof resignReleases>('resignReleases', {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [{ targets: resignTargets(config, { yum: true }), keys: true }],
    });
    return handle.result().catch((err: unknown) => {
      let cause = err;
      while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
      if (err instanceof WorkflowFailedError && cause instanceof Error) {
        throw new Error(`${cause.message} (workflow ${workflowId})`);
      }
      throw err;
    });
  });
  const { s3 } = createAwsClients(config);
  const published: RotateKeysResult['published'] = [];
  for (const environment of ['staging', 'production'] as const) {
    const { bucket, prefix } = parseS3Url(config.storage[environment]);
    const key = await createRepoStore(s3, bucket, prefix).get(PUBLIC_KEY_PATH);
    published.push({ environment, fingerprints: key ? await publicKeyFingerprints(key.toString('utf8')) : [] });
  }
  return { ...result, workflowId, published };
}

export function keysCommand(): Command {
  const rotate = new Command('rotate')
    .description('re-sign every channel with the configured key set (both keys while signing.nextKeyFile is set)')
    .option('--finish', 'end the rotation: signing.keyFile is now the new key, signing.nextKey* removed')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { finish?: boolean; json?: boolean }, cmd: Command) => {
      const r = await rotateKeys(commandConfig(cmd), { finish: opts.finish });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      for (const x of r.resigned) process.stdout.write(`re-signed ${x.environment} ${x.channel} ${x.distro}\n`);
      for (const x of r.skipped) process.stdout.write(`never published ${x.environment} ${x.channel} ${x.distro}\n`);
      for (const p of r.published) {
        process.stdout.write(`${p.environment} ${PUBLIC_KEY_PATH}: ${p.fingerprints.join(', ') || '(none)'}\n`);
      }
      process.stdout.write(`workflow ${r.workflowId}\n`);
    });
  return new Command('keys')
    .description('the repository signing keys: rotation with an overlap')
    .addHelpText(
      'after',
      `
  1. generate the new key; set signing.nextKeyFile to it; restart the orchestrator
  2. conveyor keys rotate            indexes signed by both keys, keys/conveyor.asc holds both
  3. wait out the overlap (clients fetch the new key); then signing.keyFile = the new key,
     remove signing.nextKeyFile; restart the orchestrator
  4. conveyor keys rotate --finish   indexes signed by the new key only, keys/conveyor.asc holds it alone`,
    )
    .addCommand(rotate);
}
