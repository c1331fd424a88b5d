// Who may do what from chat (conveyor.yml `chat.access`): per repository (or `*`), a Slack user ID
// or `group:<name>` (chat.groups) → the actions granted. Nothing is granted by default: a user the
// map does not name is refused everything, and every refusal says why.
import type { ChatAction } from '../../common/chat';
import type { ConveyorConfig } from '../../config/conveyor';

type Chat = NonNullable<ConveyorConfig['chat']>;

/** The actions `user` holds on `repository`, from the entries for it and for `*`. */
export function grantsOf(chat: Chat, user: string, repository: string): Set<ChatAction> {
  const out = new Set<ChatAction>();
  const groups = Object.entries(chat.groups)
    .filter(([, members]) => members.includes(user))
    .map(([name]) => `group:${name}`);
  for (const [repo, grants] of Object.entries(chat.access)) {
    if (repo !== '*' && repo.toLowerCase() !== repository.toLowerCase()) continue;
    for (const key of [user, ...groups]) for (const a of grants[key] ?? []) out.add(a);
  }
  return out;
}

/** True when the map names the user anywhere (directly or through a group). */
export function isKnownUser(chat: Chat, user: string): boolean {
  const inGroup = Object.entries(chat.groups).filter(([, m]) => m.includes(user));
  return Object.values(chat.access).some(
    (grants) => user in grants || inGroup.some(([name]) => `group:${name}` in grants),
  );
}

/** Why `user` may not do `action` on `repository`, or undefined when they may. */
export function refusal(chat: Chat, user: string, repository: string, action: ChatAction): string | undefined {
  if (!isKnownUser(chat, user)) {
    return `refused: you (${user}) are not in chat.access of conveyor.yml: ask whoever runs Conveyor to grant you actions`;
  }
  const held = grantsOf(chat, user, repository);
  if (held.has(action)) return undefined;
  return (
    `refused: you (${user}) may not ${action} ${repository}` +
    (held.size > 0 ? ` (your actions there: ${[...held].join(', ')})` : ' (you hold no action on it)')
  );
}

/** The repositories `user` may read (`status`/`list`); `*` when granted everywhere. */
export function readableRepositories(chat: Chat, user: string, configured: string[]): string[] | '*' {
  if (hasWildcard(chat, user)) return '*';
  return configured.filter((r) => grantsOf(chat, user, r).has('status'));
}

function hasWildcard(chat: Chat, user: string): boolean {
  const star = chat.access['*'];
  if (!star) return false;
  const groups = Object.entries(chat.groups)
    .filter(([, m]) => m.includes(user))
    .map(([n]) => `group:${n}`);
  return [user, ...groups].some((k) => star[k]?.includes('status'));
}
