// Sends a GitHub-shaped, signed push webhook: what GitHub would deliver for a push. Used by the
// demo, `conveyor trigger` and the tests, so they all speak the exact protocol the API verifies.
import crypto from 'node:crypto';
import { createWebhooks } from '../api/octokit';

export interface PushEvent {
  repository: string;
  branch: string;
  sha: string;
  before?: string;
  message?: string;
  author?: string;
}

export function pushPayload(e: PushEvent): Record<string, unknown> {
  const [owner, name] = e.repository.split('/');
  const before = e.before ?? '0'.repeat(40);
  return {
    ref: `refs/heads/${e.branch}`,
    before,
    after: e.sha,
    created: /^0+$/.test(before),
    deleted: false,
    forced: false,
    compare: `https://github.com/${e.repository}/compare/${before.slice(0, 12)}...${e.sha.slice(0, 12)}`,
    repository: { name, full_name: e.repository, owner: { login: owner, name: owner } },
    pusher: { name: e.author ?? 'conveyor-demo' },
    head_commit: {
      id: e.sha,
      message: e.message ?? '',
      timestamp: new Date().toISOString(),
      author: { name: e.author ?? 'conveyor-demo', username: e.author ?? 'conveyor-demo' },
    },
  };
}

export interface DeliveryResponse {
  status: number;
  body: { status?: string; workflowId?: string; reason?: string; error?: string };
}

export async function sendWebhook(
  apiUrl: string,
  secret: string | undefined,
  event: string,
  payload: unknown,
  deliveryId: string = crypto.randomUUID(),
): Promise<DeliveryResponse> {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': deliveryId,
    'user-agent': 'GitHub-Hookshot/conveyor',
  };
  if (secret) headers['x-hub-signature-256'] = await (await createWebhooks(secret)).sign(body);
  const res = await fetch(`${apiUrl.replace(/\/$/, '')}/webhooks/github`, { method: 'POST', headers, body });
  const text = await res.text();
  let parsed: DeliveryResponse['body'];
  try {
    parsed = JSON.parse(text) as DeliveryResponse['body'];
  } catch {
    parsed = { error: text };
  }
  return { status: res.status, body: parsed };
}
