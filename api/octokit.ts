// @octokit/webhooks is ESM-only. Loaded with a dynamic import, it works under tsx, plain Node 20
// and jest alike (a static import compiled to require() breaks under tsx's CommonJS loader).
import type { Webhooks } from '@octokit/webhooks';

export async function createWebhooks(secret: string): Promise<Webhooks> {
  const mod = await import('@octokit/webhooks');
  return new mod.Webhooks({ secret });
}
