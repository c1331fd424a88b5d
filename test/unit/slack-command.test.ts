// `/conveyor …` text as commands (untrusted input), who may run them (chat.access), and what a
// notification says (escaped, with buttons for approvals).
import { grantsOf, readableRepositories, refusal } from '../../api/slack/access';
import { parseCommand, parseTarget, rightOf, USAGE } from '../../api/slack/parse-command';
import { parseRequest } from '../../api/slack/slack-handler';
import { slackMessage } from '../../activities/chat/slack-message';
import { CHAT_BUTTONS } from '../../common/chat';

const SHA = 'a'.repeat(40);
const RUN = `pipeline/acme/widget/release/1.2/${SHA}`;

describe('parseCommand', () => {
  it('reads every command with a run ID or owner/repo/branch (branches with slashes too)', () => {
    expect(parseCommand(`approve ${RUN} ship it`)).toEqual({
      ok: true,
      command: {
        action: 'approve',
        target: { kind: 'run', workflowId: RUN, repository: 'acme/widget', branch: 'release/1.2' },
        comment: 'ship it',
      },
    });
    expect(parseCommand('  REJECT   acme/widget/main   not   today ')).toEqual({
      ok: true,
      command: {
        action: 'reject',
        target: { kind: 'branch', repository: 'acme/widget', branch: 'main' },
        reason: 'not today',
      },
    });
    expect(parseCommand('retry acme/widget/feature/x package/el9')).toEqual({
      ok: true,
      command: {
        action: 'retry',
        target: { kind: 'branch', repository: 'acme/widget', branch: 'feature/x' },
        stage: 'package/el9',
      },
    });
    expect(parseCommand(`abort ${RUN}`)).toMatchObject({ ok: true, command: { action: 'abort' } });
    expect(parseCommand(`status ${RUN}`)).toMatchObject({ ok: true, command: { action: 'status' } });
    expect(parseCommand('list')).toEqual({ ok: true, command: { action: 'list' } });
    expect(parseCommand('list acme/widget')).toEqual({
      ok: true,
      command: { action: 'list', repository: 'acme/widget' },
    });
    expect(parseCommand('list acme/widget/v1.0')).toEqual({
      ok: true,
      command: { action: 'list', repository: 'acme/widget', branch: 'v1.0' },
    });
    expect(parseCommand('')).toEqual({ ok: true, command: { action: 'help' } });
    expect(parseCommand('help')).toEqual({ ok: true, command: { action: 'help' } });
  });

  it('refuses what is not a command, saying why', () => {
    expect(parseCommand('deploy acme/widget/main')).toEqual({ ok: false, reason: `unknown command deploy. ${USAGE}` });
    expect(parseCommand('approve')).toEqual({
      ok: false,
      reason: `approve needs a run ID or owner/repo/branch. ${USAGE}`,
    });
    expect(parseCommand('retry acme/widget/main lint')).toMatchObject({ ok: false, reason: /^unknown stage lint/ });
    expect(parseCommand('retry acme/widget/main test extra')).toMatchObject({ ok: false, reason: /at most one stage/ });
    expect(parseCommand('status acme/widget/main more')).toMatchObject({ ok: false, reason: /one argument/ });
    expect(parseCommand('x'.repeat(1001))).toMatchObject({ ok: false, reason: /longer than 1000/ });
    expect(parseCommand('approve acme/widget/main\u0000')).toMatchObject({ ok: false, reason: /control characters/ });
  });

  it('takes only names a repository and a git branch can have (nothing that could reach a query as syntax)', () => {
    for (const bad of [
      "acme/widget/main' OR 1=1",
      'acme/widget',
      'acme/wid get/main',
      'acme/widget/../main',
      'acme/widget/main/',
      'acme/widget/a//b',
      'acme\\x/widget/main',
      `pipeline/acme/widget/main/${'g'.repeat(40)}`,
      `pipeline/acme/widget/${SHA}`,
      '<@U123>/widget/main',
    ]) {
      expect({ bad, parsed: parseTarget(bad) }).toEqual({ bad, parsed: { ok: false, reason: expect.any(String) } });
    }
  });

  it('names the right each command needs (list is a read)', () => {
    const right = (t: string) => {
      const p = parseCommand(t);
      return p.ok ? rightOf(p.command) : 'unparsed';
    };
    expect(
      ['list', `status ${RUN}`, `approve ${RUN}`, `reject ${RUN}`, `retry ${RUN}`, `abort ${RUN}`, 'help'].map(right),
    ).toEqual(['status', 'status', 'approve', 'reject', 'retry', 'abort', undefined]);
  });
});

describe('chat.access', () => {
  const chat = {
    slack: { apiUrl: '', signingSecretEnv: 'S', responseUrlPrefixes: [] },
    groups: { releasers: ['U0REL'] },
    access: {
      'acme/widget': { U0DEV: ['status' as const, 'retry' as const], 'group:releasers': ['approve' as const] },
      '*': { U0ADMIN: ['status' as const, 'abort' as const] },
    },
  };

  it('grants per repository, through groups and through *', () => {
    expect([...grantsOf(chat, 'U0REL', 'acme/widget')]).toEqual(['approve']);
    expect([...grantsOf(chat, 'U0REL', 'acme/gadget')]).toEqual([]);
    expect([...grantsOf(chat, 'U0ADMIN', 'acme/gadget')].sort()).toEqual(['abort', 'status']);
    expect(refusal(chat, 'U0REL', 'acme/widget', 'approve')).toBeUndefined();
    expect(refusal(chat, 'U0DEV', 'ACME/Widget', 'retry')).toBeUndefined();
    expect(readableRepositories(chat, 'U0DEV', ['acme/widget', 'acme/gadget'])).toEqual(['acme/widget']);
    expect(readableRepositories(chat, 'U0ADMIN', ['acme/widget'])).toBe('*');
  });

  it('refuses an unknown user and a user without the right, saying which', () => {
    expect(refusal(chat, 'U0NOBODY', 'acme/widget', 'status')).toBe(
      'refused: you (U0NOBODY) are not in chat.access of conveyor.yml: ask whoever runs Conveyor to grant you actions',
    );
    expect(refusal(chat, 'U0DEV', 'acme/widget', 'approve')).toBe(
      'refused: you (U0DEV) may not approve acme/widget (your actions there: status, retry)',
    );
    expect(refusal(chat, 'U0REL', 'acme/gadget', 'approve')).toBe(
      'refused: you (U0REL) may not approve acme/gadget (you hold no action on it)',
    );
  });
});

describe('Slack requests (after the signature)', () => {
  const form = (o: Record<string, string>) => Buffer.from(new URLSearchParams(o).toString());

  it('a slash command: user, team, response_url checked; a bad command kept as the answer', () => {
    expect(
      parseRequest(
        form({
          command: '/conveyor',
          text: `approve ${RUN}`,
          user_id: 'U0REL',
          user_name: 'rel.eng',
          team_id: 'T0TEAM',
          response_url: 'https://hooks.slack.com/commands/T0TEAM/1/x',
        }),
      ),
    ).toMatchObject({
      user: 'U0REL',
      userName: 'rel.eng',
      team: 'T0TEAM',
      button: false,
      command: { action: 'approve' },
    });
    expect(parseRequest(form({ command: '/conveyor', text: 'launch', user_id: 'U0REL' }))).toMatchObject({
      invalid: expect.stringMatching(/^unknown command launch/),
    });
    expect(parseRequest(form({ command: '/conveyor', text: 'list', user_id: 'alice' }))).toEqual({
      problem: 'user_id is missing or not a Slack user ID',
    });
    // A user name that could inject formatting is dropped, not passed on.
    expect(
      parseRequest(form({ command: '/conveyor', text: 'list', user_id: 'U0REL', user_name: '<!channel>' })),
    ).not.toHaveProperty('userName');
  });

  it('a button: block_actions with one of our action IDs naming a run', () => {
    const payload = (o: unknown) => form({ payload: JSON.stringify(o) });
    const click = {
      type: 'block_actions',
      user: { id: 'U0REL', username: 'rel', team_id: 'T0TEAM' },
      team: { id: 'T0TEAM' },
      response_url: 'https://hooks.slack.com/actions/T0TEAM/1/x',
      actions: [{ action_id: CHAT_BUTTONS.reject, value: RUN, type: 'button' }],
    };
    expect(parseRequest(payload(click))).toMatchObject({
      user: 'U0REL',
      button: true,
      command: {
        action: 'reject',
        target: { kind: 'run', workflowId: RUN },
        reason: 'rejected with the button in Slack',
      },
    });
    expect(parseRequest(payload({ ...click, actions: [{ action_id: 'other', value: RUN }] }))).toEqual({
      problem: 'unknown action',
    });
    expect(
      parseRequest(payload({ ...click, actions: [{ action_id: CHAT_BUTTONS.approve, value: 'acme/widget/main' }] })),
    ).toEqual({
      problem: 'the button does not name a run',
    });
    expect(parseRequest(payload({ ...click, type: 'view_submission' }))).toEqual({
      problem: 'only block_actions payloads are handled',
    });
    expect(parseRequest(form({ payload: '{' }))).toEqual({ problem: 'payload is not JSON' });
  });
});

describe('slackMessage', () => {
  const run = {
    workflowId: RUN,
    repository: 'acme/widget',
    branch: 'release/1.2',
    sha: SHA,
    title: 'Fix <!channel> & <https://evil|click>',
    runUrl: 'http://127.0.0.1:8233/namespaces/default/workflows/x',
  };

  it('an approval: repository, branch, short sha, title escaped, build, link, Approve and Reject naming the run', () => {
    const m = slackMessage(run, { seq: 3, kind: 'awaiting-approval', build: 7, version: '1.2.0-7' });
    const text = JSON.stringify(m);
    expect(text).not.toContain('<!channel>');
    expect(text).toContain('Fix &lt;!channel&gt; &amp; &lt;https://evil|click&gt;');
    expect(m.blocks[0]).toMatchObject({
      text: {
        text: expect.stringMatching(
          /^:raised_hand: \*<http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/x\|acme\/widget>\* `release\/1\.2`: waiting for approval.*\n`aaaaaaa` Fix .* · build 7 \(1\.2\.0-7\)$/,
        ),
      },
    });
    const actions = m.blocks.find((b) => (b as { type: string }).type === 'actions') as {
      elements: { action_id: string; value: string }[];
    };
    expect(actions.elements.map((e) => [e.action_id, e.value])).toEqual([
      [CHAT_BUTTONS.approve, RUN],
      [CHAT_BUTTONS.reject, RUN],
    ]);
    expect(m.text).toContain(run.runUrl);
  });

  it('a failed stage: its error and the last lines of its log, no buttons', () => {
    const tail = Array.from({ length: 60 }, (_, i) => `line ${i}`).join('\n') + '\n```oops';
    const m = slackMessage(run, { seq: 1, kind: 'stage-failed', stage: 'test', attempt: 2, error: 'exit 3', tail });
    const text = JSON.stringify(m.blocks);
    expect(text).toContain('stage test failed (attempt 2)');
    expect(text).toContain('*test*: exit 3');
    expect(text).toContain('line 59');
    expect(text).not.toContain('line 10\\n');
    expect(text).toContain("'''oops");
    expect(m.blocks.some((b) => (b as { type: string }).type === 'actions')).toBe(false);
  });
});
