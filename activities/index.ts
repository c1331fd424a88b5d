// Activity factory: dependencies are injected, workflows see only `typeof` the result through
// `proxyActivities` (import type), so test doubles cannot drift from the real signatures.
import { parseS3Url, type ConveyorConfig } from '../config/conveyor';
import { createRunStep } from './exec/run-step';
import type { AwsClients } from './storage/s3';

export interface ActivityDeps {
  config: ConveyorConfig;
  aws: AwsClients;
}

export function createActivities({ config, aws }: ActivityDeps) {
  const artifacts = parseS3Url(config.storage.artifacts);
  return {
    runStep: createRunStep({
      s3: aws.s3,
      artifactsBucket: artifacts.bucket,
      artifactsPrefix: artifacts.prefix,
      workspaceRoot: config.workspace,
    }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
