// `e2e: { examples }` end to end below the pipeline: the verify stage workflow, on real workers of
// the test stack, reads the documents of a pushed commit on a builder (git objects, no working
// tree) and runs their marked blocks on a real local staging host (a Debian root, executor
// `local`, the fleet tests' kind) through the fleet executor. One document passes, one differs:
// the stage fails with the file:line of the mismatch and its expected/actual diff, in the
// failure's message, tail and details; the transcript is in the artifacts bucket. The commands
// ran on the host: one reads a file that exists only in the host's root.
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Host } from '../../activities/fleet';
import { commitSample } from '../../cli/demo/sample-repo';
import { FailureType } from '../../common/failures';
import { parseS3Url, repositorySpec, type ConveyorConfig } from '../../config/conveyor';
import type { ExamplesFailureDetails, VerifyStageInput, VerifyStageResult } from '../../workflows/stages/verify';
import { makeLocalHost } from '../helpers/hosts';
import { awsFor, clientFor, startWorkers, tempDir, testConfig, uid } from '../helpers/stack';

const README = [
  '# widget', // 1
  '', // 2
  '```console conveyor-example', // 3
  '$ cat /etc/conveyor-example-host', // 4
  'inside ex-1', // 5
  '$ echo "$CONVEYOR_HOST" && pwd', // 6
  'ex-1', // 7
  '/tmp/...', // 8
  '```', // 9
  '', // 10
  '<!-- conveyor-example -->', // 11
  '```sh', // 12
  '$ touch made-here && ls', // 13
  'made-here', // 14
  '$ for i in 1 2 3 4; do', // 15
  '>   echo "line $i"', // 16
  '> done', // 17
  'line 1', // 18
  '...', // 19
  'line 4', // 20
  '$ cat /no/such/file', // 21
  'cat: /no/such/file: No such file or directory', // 22
  '[1]', // 23
  '```', // 24
  '',
].join('\n');

const GUIDE = [
  '# Adding', // 1
  '', // 2
  '```console conveyor-example', // 3
  '$ expr 2 + 3', // 4
  '4', // 5
  '$ echo still runs', // 6
  'still runs', // 7
  '```', // 8
  '',
].join('\n');

describe('documented examples: the verify stage runs them on a staging host', () => {
  let config: ConveyorConfig;
  let client: Client;
  let workers: { stop(): Promise<void> };
  let s3: S3Client;
  let host: Host;
  let sha: string;
  const pipelineId = `pipeline/acme/docs/main/${uid()}`;

  beforeAll(async () => {
    const dir = tempDir('doc-examples');
    const bare = path.join(dir, 'docs.git');
    config = testConfig(
      [{ name: 'acme/docs', cloneUrl: bare, steps: { unit: 'true', e2e: { examples: ['README.md', 'docs/*.md'] } } }],
      { fleet: { hostsDir: path.join(dir, 'hosts') } },
    );
    const [distro] = Object.keys(config.distros);
    const root = await makeLocalHost(path.join(dir, 'hosts'), 'ex-1', 'deb');
    fs.writeFileSync(path.join(root, 'etc/conveyor-example-host'), 'inside ex-1\n');
    host = { instanceId: 'i-0123456789abcdef9', name: 'ex-1', distro, executor: 'local', root };
    sha = (
      await commitSample(bare, path.join(dir, 'work'), {
        message: 'documents',
        mutate: (w) => {
          fs.writeFileSync(path.join(w, 'README.md'), README);
          fs.mkdirSync(path.join(w, 'docs'), { recursive: true });
          fs.writeFileSync(path.join(w, 'docs/guide.md'), GUIDE);
          // A link out of the checkout is never read, whatever its name.
          fs.symlinkSync('/etc/shadow', path.join(w, 'docs/shadow.md'));
        },
      })
    ).sha;
    s3 = (await awsFor(config)).s3;
    client = await clientFor(config);
    workers = await startWorkers(config);
  }, 600_000);

  afterAll(async () => {
    await workers?.stop();
    await client?.connection.close();
  });

  const verify = (examples: string[], attempt: string): Promise<VerifyStageResult> => {
    const repo = config.repositories[0];
    const repository = repositorySpec(
      config,
      { ...repo, steps: { ...repo.steps, e2e: { examples } } },
      repo.branches[0],
    );
    const input: VerifyStageInput = {
      pipelineId,
      repository,
      branch: 'main',
      sha,
      version: '1.0.0',
      build: 1,
      hosts: [{ distro: host.distro, hosts: [host] }],
    };
    return client.workflow.execute('verifyStage', {
      workflowId: `${pipelineId}/verify#${attempt}`,
      taskQueue: config.temporal.taskQueue,
      args: [input],
    });
  };

  /** The stage's failure: VerifyFailed, with the examples' details. */
  const failureOf = async (p: Promise<unknown>): Promise<{ message: string; details: ExamplesFailureDetails }> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe(FailureType.VerifyFailed);
    return { message: cause!.message, details: (cause as ApplicationFailure).details![0] as ExamplesFailureDetails };
  };

  const read = async (key: string) => {
    const { bucket, prefix } = parseS3Url(config.storage.artifacts);
    return (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}${key}` }))).Body!.transformToString();
  };

  it('passes when every example prints what its document shows, run on the host', async () => {
    const r = await verify(['README.md'], '1');
    expect(r.examples).toEqual({
      files: ['README.md'],
      examples: 2,
      hosts: [{ host: 'ex-1', distro: host.distro, passed: 2, logKey: expect.stringMatching(/examples-ex-1\.log$/) }],
    });
    const transcript = await read(r.examples!.hosts[0].logKey);
    expect(transcript).toContain('== README.md:3 on ex-1\n$ cat /etc/conveyor-example-host\ninside ex-1\n');
    expect(transcript).toContain('$ cat /no/such/file\ncat: /no/such/file: No such file or directory\n[1]\n');
    expect(transcript.match(/^-- ok$/gm)).toHaveLength(2);
  }, 300_000);

  it('fails the stage for a mismatch, naming its file:line with an expected/actual diff', async () => {
    const { message, details } = await failureOf(verify(['README.md', 'docs/*.md'], '2'));
    expect(message).toBe('documented examples: 1 mismatch(es) at docs/guide.md:4 on ex-1');
    expect(details.mismatches).toEqual([
      { file: 'docs/guide.md', line: 4, host: 'ex-1', command: 'expr 2 + 3', diff: '- 4\n+ 5' },
    ]);
    expect(details.tail).toBe('docs/guide.md:4 on ex-1: $ expr 2 + 3\n- 4\n+ 5');
    expect(details.step).toBe('e2e');
    // The rest of the block still ran, and the README passed beside it.
    const transcript = await read(details.logKey);
    expect(transcript).toContain('$ echo still runs\nstill runs\n-- 1 mismatch(es)');
    expect(transcript.match(/^-- ok$/gm)).toHaveLength(2);
  }, 300_000);

  it('refuses documents that are links, and patterns that match nothing, before anything runs', async () => {
    const { message, details } = await failureOf(verify(['docs/shadow.md', 'CHANGELOG.md'], '3'));
    expect(message).toBe('documented examples: 2 problem(s) at docs/shadow.md, CHANGELOG.md');
    expect(details.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/^matches no regular file at [0-9a-f]{12} \(symlinks and submodules are not read\)$/),
      expect.stringMatching(/^matches no regular file/),
    ]);
    expect(details.tail).toContain('docs/shadow.md: matches no regular file');
  }, 300_000);
});
