// Which credentials the AWS clients use: the SDK's default chain whenever no endpoint is set (real
// AWS), the local stack's fixed ones only when an endpoint is set, and real clients resolving them.
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { createAwsClients, LOCAL_CREDENTIALS } from '../../activities/storage/s3';

const CHAIN = { AWS_ACCESS_KEY_ID: 'AKIADEFAULTCHAIN0001', AWS_SECRET_ACCESS_KEY: 'default-chain-secret' };

describe('AWS credentials', () => {
  const saved = { ...process.env };
  beforeEach(() => {
    // The default chain reads the process env: give it credentials it can find.
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    Object.assign(process.env, CHAIN);
  });
  afterAll(() => {
    process.env = saved;
  });

  it('without an endpoint every client takes the default credential chain, never the fixed ones', async () => {
    const aws = createAwsClients({ aws: { region: 'eu-west-1' } }, { ...CHAIN });
    for (const client of [aws.s3, aws.ec2, aws.ssm]) {
      const creds = await client.config.credentials();
      expect(creds.accessKeyId).toBe(CHAIN.AWS_ACCESS_KEY_ID);
      expect(creds.accessKeyId).not.toBe(LOCAL_CREDENTIALS.accessKeyId);
    }
    expect(aws.s3.config.forcePathStyle).toBe(false);
  });

  it('with an endpoint the fixed local credentials apply, unless credentials are given explicitly', async () => {
    const local = { aws: { region: 'us-east-1', endpoint: 'http://127.0.0.1:5000' } };
    const aws = createAwsClients(local, {});
    for (const client of [aws.s3, aws.ec2, aws.ssm]) {
      expect(await client.config.credentials()).toMatchObject(LOCAL_CREDENTIALS);
    }
    expect(aws.s3.config.forcePathStyle).toBe(true);
    // An S3-compatible service or a VPC endpoint with real keys: the chain again.
    const explicit = createAwsClients(local, { ...CHAIN });
    expect((await explicit.s3.config.credentials()).accessKeyId).toBe(CHAIN.AWS_ACCESS_KEY_ID);
  });

  it('a per-service endpoint variable gives only that service the fixed credentials and the endpoint', async () => {
    const aws = createAwsClients({ aws: { region: 'us-east-1' } }, { AWS_ENDPOINT_URL_SSM: 'http://127.0.0.1:4999' });
    expect(await aws.ssm.config.credentials()).toMatchObject(LOCAL_CREDENTIALS);
    const endpoint = await aws.ssm.config.endpoint!();
    expect(`${endpoint.protocol}//${endpoint.hostname}:${endpoint.port}`).toBe('http://127.0.0.1:4999');
    expect((await aws.s3.config.credentials()).accessKeyId).toBe(CHAIN.AWS_ACCESS_KEY_ID);
    expect((await aws.ec2.config.credentials()).accessKeyId).toBe(CHAIN.AWS_ACCESS_KEY_ID);
  });

  it('the fixed credentials are accepted by the local endpoint (a real request to the test stack)', async () => {
    const endpoint = process.env.CONVEYOR_TEST_AWS ?? saved.CONVEYOR_TEST_AWS;
    if (!endpoint) throw new Error('CONVEYOR_TEST_AWS is not set: run through jest (test/setup/global-setup.ts)');
    const aws = createAwsClients({ aws: { region: 'us-east-1', endpoint } }, {});
    const res = await aws.s3.send(new ListBucketsCommand({}));
    expect(res.$metadata.httpStatusCode).toBe(200);
  });
});
