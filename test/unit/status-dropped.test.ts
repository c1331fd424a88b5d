// `conveyor status` names artifacts that a publish left out because retention dropped them at
// once (an older build than those kept): the stage succeeded, but not with everything it was given.
import { statusDetails } from '../../cli/commands/status';
import type { PipelineStatus } from '../../common/types';

it('lists the artifacts a publish dropped, with the reason', () => {
  const status: PipelineStatus = {
    workflowId: 'pipeline/acme/widget/main/abc',
    repository: 'acme/widget',
    branch: 'main',
    sha: 'abc',
    status: 'succeeded',
    startedAt: '2026-12-01T00:00:00Z',
    stages: [],
    published: {
      environment: 'staging',
      channel: 'unstable',
      repositories: [
        {
          distro: 'bookworm',
          path: 'apt',
          suite: 'bookworm-unstable',
          dropped: ['widget 1.0.0-3 all: older than the 2 newest builds of widget (all) kept in apt bookworm-unstable'],
        },
      ],
    },
  };
  expect(statusDetails(status)).toContain(
    '  staging unstable (bookworm): not published: widget 1.0.0-3 all: older than the 2 newest builds of widget (all) kept in apt bookworm-unstable',
  );
});
