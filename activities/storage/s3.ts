// S3 client and the few object operations every domain needs. Locally the endpoint is moto
// (path-style addressing, any credentials); in production the default credential chain.
// The EC2 and SSM clients are made, and their SDK packages loaded, on first use: the CLI's repo,
// keys, audit, promote and rerun commands hold AwsClients for S3 alone, and loading
// @aws-sdk/client-ec2 costs ~120 ms of CPU per process (test/unit/cli-startup.test.ts).
import type * as Ec2Sdk from '@aws-sdk/client-ec2';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type * as SsmSdk from '@aws-sdk/client-ssm';
import type { ConveyorConfig } from '../../config/conveyor';

export interface AwsClients {
  s3: S3Client;
  ec2: Ec2Sdk.EC2Client;
  ssm: SsmSdk.SSMClient;
}

type Service = keyof AwsClients;

/** The standard per-service variables (AWS SDK "service-specific endpoints"); AWS_ENDPOINT_URL is aws.endpoint. */
const SERVICE_ENDPOINT_ENV: Record<Service, string> = {
  s3: 'AWS_ENDPOINT_URL_S3',
  ec2: 'AWS_ENDPOINT_URL_EC2',
  ssm: 'AWS_ENDPOINT_URL_SSM',
};

/** The fixed credentials of the local stack's stand-in (moto accepts any). */
export const LOCAL_CREDENTIALS = { accessKeyId: 'conveyor-local', secretAccessKey: 'conveyor-local' } as const;

/** The endpoint a client of `service` talks to: aws.endpoint, else AWS_ENDPOINT_URL_<SERVICE>; none on AWS. */
export function endpointFor(service: Service, config: Pick<ConveyorConfig, 'aws'>, env: NodeJS.ProcessEnv) {
  return config.aws.endpoint || env[SERVICE_ENDPOINT_ENV[service]] || undefined;
}

/**
 * Credentials for a client: with no endpoint, undefined, so the SDK's default chain finds them (env,
 * shared profile, SSO, container or instance role): production never gets the fixed ones. With an
 * endpoint (the local stack), the fixed local credentials, unless credentials are given explicitly
 * (AWS_ACCESS_KEY_ID or AWS_PROFILE: an S3-compatible service or a VPC endpoint with real keys).
 */
export function credentialsFor(service: Service, config: Pick<ConveyorConfig, 'aws'>, env: NodeJS.ProcessEnv) {
  if (endpointFor(service, config, env) && !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE) return { ...LOCAL_CREDENTIALS };
  return undefined;
}

export function createAwsClients(config: Pick<ConveyorConfig, 'aws'>, env = process.env): AwsClients {
  const common = (service: Service) => ({
    region: config.aws.region,
    endpoint: endpointFor(service, config, env),
    credentials: credentialsFor(service, config, env),
  });
  let ec2: Ec2Sdk.EC2Client | undefined;
  let ssm: SsmSdk.SSMClient | undefined;
  return {
    s3: new S3Client({ ...common('s3'), forcePathStyle: Boolean(endpointFor('s3', config, env)) }),
    get ec2() {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (header)
      return (ec2 ??= new (require('@aws-sdk/client-ec2') as typeof Ec2Sdk).EC2Client(common('ec2')));
    },
    get ssm() {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (header)
      return (ssm ??= new (require('@aws-sdk/client-ssm') as typeof SsmSdk).SSMClient(common('ssm')));
    },
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
