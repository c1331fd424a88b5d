// Credentials for git remotes, handed to git through its environment only.
//
// A repository's `checkout` setting in conveyor.yml names a credential by reference (an env var, a
// key file, a GitHub App); the worker that talks to the remote resolves it from its OWN
// environment and files when it runs git, so the secret never travels in a workflow input, a
// spool file, a failure message, argv, a URL or the checkout's `.git/config`:
// - HTTPS token: `http.<origin>/.extraHeader = Authorization: Basic …` through GIT_CONFIG_COUNT /
//   GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n. Scoped to the clone URL's origin, so a redirect to
//   another host never carries it.
// - GitHub App: an installation token minted with @octokit/auth-app (cached by it until shortly
//   before expiry), then handed over like a token. Give the builders an app (or token) that can
//   only read contents: they check out hostile code.
// - SSH deploy key: GIT_SSH_COMMAND with `-i KEY -o IdentitiesOnly=yes`, no agent, no user ssh
//   config, strict host-key checking against the configured known_hosts file.
// With a credential configured, the worker user's own ~/.gitconfig, keys and agent are ignored, so
// a checkout works the same on every worker. Git itself runs with a minimal environment: none of
// the worker's other secrets reach it. The sandboxed steps that follow never see any of this:
// their environment is built from scratch (activities/exec).
import fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import type { ConveyorConfig, Env, RepositoryConfig } from '../../config/conveyor';

export type CheckoutCredential = NonNullable<RepositoryConfig['checkout']>;

/** Resolves the extra git environment for a remote; undefined when none is configured. */
export type GitAuth = (cloneUrl: string) => Promise<NodeJS.ProcessEnv>;

/** The environment every git process of ours starts from: nothing of the worker's own secrets. */
export function gitBaseEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' };
  for (const k of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'USER', 'SSH_AUTH_SOCK', 'GIT_SSH_COMMAND']) {
    if (base[k] !== undefined) env[k] = base[k];
  }
  return env;
}

/** `http.https://host/.extraHeader` with a Basic header for `token` (GitHub's x-access-token form). */
export function tokenHeaderEnv(cloneUrl: string, token: string): NodeJS.ProcessEnv {
  const origin = httpsOrigin(cloneUrl);
  if (!origin) return {};
  const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
  return {
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${origin}/.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
  };
}

/** The origin a token may be sent to: https, or plain http on loopback only (a local test remote). */
function httpsOrigin(cloneUrl: string): string | undefined {
  if (!/^https?:\/\//i.test(cloneUrl)) return undefined;
  const url = new URL(cloneUrl);
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol === 'http:' && !loopback) {
    throw missing(`refusing to send a token over plain HTTP to ${url.host}: use an https:// clone URL`);
  }
  return url.origin;
}

/** GIT_SSH_COMMAND for a deploy key: only that key, no agent, no user config, known hosts enforced. */
export function sshKeyEnv(keyFile: string, knownHostsFile?: string): NodeJS.ProcessEnv {
  const opts = [
    '-F /dev/null',
    `-i ${keyFile}`,
    '-o IdentitiesOnly=yes',
    '-o IdentityAgent=none',
    '-o BatchMode=yes',
    ...(knownHostsFile ? [`-o UserKnownHostsFile=${knownHostsFile}`, '-o StrictHostKeyChecking=yes'] : []),
  ];
  return { GIT_CONFIG_GLOBAL: '/dev/null', GIT_SSH_COMMAND: `ssh ${opts.join(' ')}`, SSH_AUTH_SOCK: '' };
}

function missing(what: string): ApplicationFailure {
  // Not retryable: the worker's own setup is wrong, and the message says how to fix it.
  return ApplicationFailure.nonRetryable(what, FailureType.BadConfig);
}

/** The git auth of a config: credentials by clone URL, resolved from `env` and files at each call. */
export function createGitAuth(
  config: Pick<ConveyorConfig, 'repositories' | 'github'>,
  env: Env = process.env,
): GitAuth {
  const apps = new Map<string, (cloneUrl: string) => Promise<string>>();
  return async (cloneUrl) => {
    const repo = config.repositories.find((r) => r.cloneUrl === cloneUrl);
    const cred = repo?.checkout;
    if (!repo || !cred) return {};
    const where = `the checkout credential of ${repo.name}`;
    if (cred.tokenEnv) {
      const token = env[cred.tokenEnv];
      if (!token) throw missing(`${where} names ${cred.tokenEnv}, which is not set in this worker's environment`);
      return tokenHeaderEnv(cloneUrl, token);
    }
    if (cred.sshKeyFile) {
      if (!fs.existsSync(cred.sshKeyFile)) throw missing(`${where}: the SSH key ${cred.sshKeyFile} does not exist`);
      return sshKeyEnv(cred.sshKeyFile, cred.knownHostsFile);
    }
    if (cred.githubApp) {
      let mint = apps.get(repo.name);
      if (!mint) {
        mint = await installationTokens(cred.githubApp, config.github.apiUrl, env, where);
        apps.set(repo.name, mint);
      }
      return tokenHeaderEnv(cloneUrl, await mint(cloneUrl));
    }
    return {};
  };
}

async function installationTokens(
  app: NonNullable<CheckoutCredential['githubApp']>,
  apiUrl: string,
  env: Env,
  where: string,
): Promise<(cloneUrl: string) => Promise<string>> {
  let privateKey: string | undefined;
  if (app.privateKeyEnv) privateKey = env[app.privateKeyEnv];
  else if (app.privateKeyFile)
    privateKey = fs.existsSync(app.privateKeyFile) ? fs.readFileSync(app.privateKeyFile, 'utf8') : undefined;
  if (!privateKey) {
    throw missing(
      `${where}: the GitHub App's private key (${app.privateKeyEnv ?? app.privateKeyFile}) is not available to this worker`,
    );
  }
  // ESM-only packages: loaded when first needed (the workers run under tsx, jest transforms them).
  const { createAppAuth } = await import('@octokit/auth-app');
  const { request } = await import('@octokit/request');
  const auth = createAppAuth({
    appId: app.appId,
    privateKey,
    installationId: app.installationId,
    request: request.defaults({ baseUrl: apiUrl.replace(/\/$/, '') }),
  });
  return async () => {
    try {
      const r = await auth({ type: 'installation' });
      return r.token;
    } catch (err) {
      // The library's errors carry the request, never the key; keep only the status and message.
      const status = (err as { status?: number }).status;
      throw ApplicationFailure.retryable(
        `${where}: GitHub did not issue an installation token${status ? ` (HTTP ${status})` : ''}: ${(err as Error).message}`,
        FailureType.CheckoutFailed,
      );
    }
  };
}
