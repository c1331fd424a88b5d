// S3 client and the few object operations every domain needs. Locally the endpoint is moto
// (path-style addressing, any credentials); in production the default credential chain.
import { EC2Client } from '@aws-sdk/client-ec2';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { ConveyorConfig } from '../../config/conveyor';

export interface AwsClients {
  s3: S3Client;
  ec2: EC2Client;
  ssm: SSMClient;
}

function localCredentials(config: Pick<ConveyorConfig, 'aws'>, env: NodeJS.ProcessEnv) {
  // A local endpoint accepts any credentials; production never takes this path (no endpoint).
  if (config.aws.endpoint && !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE) {
    return { accessKeyId: 'conveyor-local', secretAccessKey: 'conveyor-local' };
  }
  return undefined;
}

export function createAwsClients(config: Pick<ConveyorConfig, 'aws'>, env = process.env): AwsClients {
  const common = {
    region: config.aws.region,
    endpoint: config.aws.endpoint,
    credentials: localCredentials(config, env),
  };
  return {
    s3: new S3Client({ ...common, forcePathStyle: Boolean(config.aws.endpoint) }),
    ec2: new EC2Client(common),
    ssm: new SSMClient(common),
  };
}

export async function putText(
  s3: S3Client,
  bucket: string,
  key: string,
  body: string | Buffer,
  contentType = 'text/plain; charset=utf-8',
  abortSignal?: AbortSignal,
): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }), {
    abortSignal,
  });
}
