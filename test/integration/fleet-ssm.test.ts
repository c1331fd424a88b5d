// The ssm executor's PROTOCOL against the test stack's SSM endpoint (moto): the document, the
// parameters, the target and output settings of SendCommand, polling GetCommandInvocation to
// completion (also through InvocationDoesNotExist right after sending), the log upload. moto
// answers Success without running anything (shared/FACTS.md), so nothing here takes its answer
// as proof that a command ran: the script text SSM received is run with a real sh to check what
// it would do, and reading a version over moto must fail, not report "not installed".
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SSMClient,
  type Command,
  type GetCommandInvocationCommandInput,
  type SendCommandCommandInput,
} from '@aws-sdk/client-ssm';
import { ApplicationFailure } from '@temporalio/common';
import { createFleetActivities, type FleetActivities, type Host } from '../../activities/fleet';
import { runProcess } from '../../activities/exec/process';
import { parseS3Url } from '../../config/conveyor';
import { registerHosts } from '../helpers/hosts';
import { awsFor, testConfig, testEnv, uid } from '../helpers/stack';

describe('fleet: the ssm executor speaks SSM Run Command', () => {
  let ssm: SSMClient;
  let s3: S3Client;
  let artifactsBucket: string;
  let acts: FleetActivities;
  let host: Host;
  /** GetCommandInvocation calls, and how many of the next ones answer InvocationDoesNotExist. */
  const polls: GetCommandInvocationCommandInput[] = [];
  /** SendCommand requests as we sent them (moto's stored copy adds instances of its own). */
  const sent: SendCommandCommandInput[] = [];
  let notYet = 0;
  /** Output to write where the SSM agent writes a command's complete output, before it completes. */
  let agentOutput: string | undefined;

  beforeAll(async () => {
    const config = testConfig([]);
    const aws = await awsFor(config);
    s3 = aws.s3;
    artifactsBucket = parseS3Url(config.storage.artifacts).bucket;
    ssm = new SSMClient({
      region: 'us-east-1',
      endpoint: testEnv().aws,
      credentials: { accessKeyId: 'conveyor-local', secretAccessKey: 'conveyor-local' },
    });
    const counting = {
      send: (command: { input: unknown; constructor: { name: string } }, opts?: unknown) => {
        if (command.constructor.name === 'SendCommandCommand') sent.push(command.input as SendCommandCommandInput);
        if (command.constructor.name === 'GetCommandInvocationCommand') {
          const input = command.input as GetCommandInvocationCommandInput;
          polls.push(input);
          if (agentOutput !== undefined) {
            const Body = agentOutput;
            agentOutput = undefined;
            const Key = `conveyor/ssm-output/${input.CommandId}/${input.InstanceId}/awsrunShellScript/0.awsrunShellScript/stdout`;
            return s3
              .send(new PutObjectCommand({ Bucket: artifactsBucket, Key, Body }))
              .then(() => (ssm.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, opts));
          }
          if (notYet > 0) {
            notYet--;
            return Promise.reject(
              Object.assign(new Error('invocation not created yet'), { name: 'InvocationDoesNotExist' }),
            );
          }
        }
        return (ssm.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, opts);
      },
    } as unknown as SSMClient;
    acts = createFleetActivities({
      ec2: aws.ec2,
      ssm: counting,
      s3,
      artifactsBucket,
      artifactsPrefix: 'conveyor/',
      ssmPollMs: 50,
    });
    const distro = `el9-${uid()}`;
    await registerHosts(aws.ec2, [{ name: 'ssm-1', distro, executor: 'ssm', tags: { Role: `ssm-${uid()}` } }]);
    [host] = await acts.discoverHosts({ tags: {}, distro });
  });

  async function commandsFor(instanceId: string): Promise<Command[]> {
    return (await ssm.send(new ListCommandsCommand({ InstanceId: instanceId }))).Commands ?? [];
  }

  it('sends AWS-RunShellScript to the one instance, polls the invocation to completion, uploads the log', async () => {
    expect(host.executor).toBe('ssm');
    const note = "it's $(touch /tmp/pwned-ssm) `id`";
    polls.length = 0;
    notYet = 2; // as right after a real SendCommand
    const logKey = `conveyor/logs/ssm-${uid()}/smoke.log`;
    const res = await acts.runOnHost({
      host,
      command: 'printf "%s|%s" "$CONVEYOR_HOST" "$CONVEYOR_NOTE"',
      env: { CONVEYOR_HOST: host.name, CONVEYOR_NOTE: note },
      logKey,
      timeoutSeconds: 90,
    });
    // moto's "Success" says nothing about the command; only that we followed the protocol.
    expect(res.logKey).toBe(logKey);
    expect(polls.length).toBe(3);
    expect(polls.every((p) => p.InstanceId === host.instanceId && p.CommandId === polls[0].CommandId)).toBe(true);

    expect(sent.at(-1)).toEqual({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [host.instanceId],
      Parameters: { commands: [expect.any(String)], executionTimeout: ['90'] },
      MaxConcurrency: '1',
      MaxErrors: '0',
      OutputS3BucketName: artifactsBucket,
      OutputS3KeyPrefix: 'conveyor/ssm-output',
      Comment: expect.stringMatching(/^conveyor: run printf/),
    });
    // The endpoint received it as sent, and the invocation we polled belongs to it.
    const [cmd] = (await commandsFor(host.instanceId)).filter((c) => c.CommandId === polls[0].CommandId);
    expect(cmd).toMatchObject({ DocumentName: 'AWS-RunShellScript', Parameters: sent.at(-1)!.Parameters });
    expect(cmd.InstanceIds).toContain(host.instanceId);
    const invocation = await ssm.send(
      new GetCommandInvocationCommand({ CommandId: cmd.CommandId, InstanceId: host.instanceId }),
    );
    expect(invocation.Status).toBe('Success');

    // What the instance would run: the values arrive as data, whatever they contain.
    const script = cmd.Parameters!.commands[0];
    expect(script).toContain(`export CONVEYOR_HOST='ssm-1'`);
    const local = await runProcess('sh', ['-c', script], { env: { PATH: process.env.PATH } });
    expect(local.output).toBe(`ssm-1|${note}`);

    const log = await s3.send(new GetObjectCommand({ Bucket: artifactsBucket, Key: logKey }));
    expect(await log.Body!.transformToString()).toMatch(/^\$ printf/);
  });

  it('reads the complete output from the artifacts bucket, where SSM writes what its 24,000 characters cut', async () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(20)}`).join('\n');
    agentOutput = `${lines}\nlast line\n`;
    const logKey = `conveyor/logs/ssm-${uid()}/long.log`;
    const res = await acts.runOnHost({ host, command: 'long-output', env: {}, logKey });
    expect(res.tail.split('\n').at(-1)).toBe('last line');
    const log = await (
      await s3.send(new GetObjectCommand({ Bucket: artifactsBucket, Key: logKey }))
    ).Body!.transformToString();
    expect(log).toBe(`$ long-output\n${lines}\nlast line\n`);
    expect(log.length).toBeGreaterThan(24_000);
  });

  it('execOnHost (host-exec): argv quoted, stdin inside the script, stdout apart; a stdin over 64 KiB refused', async () => {
    agentOutput = 'from the agent\n';
    const stdin = Buffer.from("any bytes: $(id) ' \n\u0000\u00ff");
    const res = await acts.execOnHost({
      host,
      argv: ['od', '-An', '-tx1', '-v'],
      stdin: stdin.toString('base64'),
      env: { CONVEYOR_HOST: host.name },
      timeoutSeconds: 60,
    });
    expect(res).toMatchObject({ exitCode: 0 });
    expect(Buffer.from(res.stdout, 'base64').toString()).toBe('from the agent\n');
    const last = (await commandsFor(host.instanceId)).at(-1)!;
    expect(sent.at(-1)!.Comment).toBe('conveyor: host-exec od');
    // What the instance would run: the argv on exactly those stdin bytes.
    const local = await runProcess('sh', ['-c', last.Parameters!.commands[0]], { env: { PATH: process.env.PATH } });
    expect(local.output.replace(/\s+/g, '')).toBe(stdin.toString('hex'));

    const big = await acts
      .execOnHost({
        host,
        argv: ['cat'],
        stdin: Buffer.alloc(64 * 1024 + 1).toString('base64'),
        env: {},
        timeoutSeconds: 60,
      })
      .catch((e: unknown) => e);
    expect((big as ApplicationFailure).type).toBe('BadInput');
    expect((big as ApplicationFailure).message).toMatch(/more than the 64 KiB an ssh or ssm command can carry/);
  });

  it('does not take an answer without the version marker for "not installed"', async () => {
    const err = await acts.hostVersion({ host, packageName: 'widget', format: 'rpm' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('HostUnreadable');
    expect((err as ApplicationFailure).message).toMatch(/reported success without the answer/);
    // It asked the right question: the version query with the package name in its environment.
    const last = (await commandsFor(host.instanceId)).at(-1)!;
    expect(last.Parameters!.commands[0]).toMatch(
      /^export CONVEYOR_PACKAGE='widget'\nexport CONVEYOR_NONCE='[0-9a-f]{16}'\n/,
    );
    expect(last.Parameters!.commands[0]).toContain("rpm -q --qf '%{VERSION}-%{RELEASE} '");
  });

  it('an upgrade over an SSM endpoint that runs nothing fails instead of reporting success', async () => {
    const bucketUrl = `${testEnv().aws}/staging`;
    const err = await acts
      .upgradeHost({
        host,
        format: 'rpm',
        packageName: 'widget',
        version: '1.0.0-2',
        repo: { url: `${bucketUrl}/yum/el9/unstable`, keyUrl: `${bucketUrl}/keys/conveyor.asc` },
        logKey: `conveyor/logs/ssm-${uid()}/upgrade.log`,
      })
      .catch((e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('HostUnreadable');
  });
});
