// Stage labels as operators type them (`deploy/el9`) → child workflow IDs (shared/DESIGN.md).
import { stageId, type StageName } from '../../common/ids';

const STAGES: StageName[] = ['test', 'package', 'publish', 'deploy', 'verify', 'release', 'promote'];

export function stageLabelToId(pipelineId: string, label: string, attempt = 1): string {
  const [name, distro, extra] = label.split('/');
  if (!STAGES.includes(name as StageName) || extra !== undefined) {
    throw new Error(
      `unknown stage ${JSON.stringify(label)}: use ${STAGES.join(', ')} (package and deploy take /<distro>)`,
    );
  }
  return stageId(pipelineId, name as StageName, distro, attempt);
}
