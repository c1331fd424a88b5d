// `audit/<id>`: writes one audit entry (activities/audit/) for an operator action that is not a
// message to a run (rerun, promote, repo rollback and remove start workflows of their own). The
// CLI starts it right after the acting workflow, so the entry is written by the orchestrator, with
// its credentials, like the entries of approve, reject, retry and abort that runs write themselves.
import { proxyActivities } from '@temporalio/workflow';
import type { OrchestratorActivities } from '../activities';
import type { RecordAuditInput } from '../common/audit';

const audit = proxyActivities<OrchestratorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10 },
});

export async function auditRecord(input: RecordAuditInput): Promise<{ key: string }> {
  return audit.recordAudit(input);
}
