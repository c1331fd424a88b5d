// The visibility query of `conveyor list` is one every store answers alike: a branch holding `"`
// (which Temporal's SQL visibility escapes in a way PostgreSQL keeps literally) is selected by its
// prefix, and listRuns keeps that exact branch; test/e2e/cluster.test.ts proves it on PostgreSQL.
import { listQuery } from '../../cli/commands/list';

describe('listQuery', () => {
  it('compares plain branches exactly, with quotes escaped', () => {
    expect(listQuery({ repository: 'acme/widget', branch: "o'brien" })).toBe(
      `WorkflowType = 'pipeline' AND ConveyorRepository = 'acme/widget' AND ConveyorBranch = 'o\\'brien'`,
    );
  });

  it('selects a branch holding a double quote by what precedes it', () => {
    expect(listQuery({ branch: 'say-"hi"' })).toBe(`WorkflowType = 'pipeline' AND ConveyorBranch STARTS_WITH 'say-'`);
    expect(listQuery({ branch: `it's-"x"` })).toBe(
      `WorkflowType = 'pipeline' AND ConveyorBranch STARTS_WITH 'it\\'s-'`,
    );
    expect(listQuery({ branch: '"quoted"', status: 'failed' })).toBe(
      `WorkflowType = 'pipeline' AND ConveyorStatus = 'failed'`,
    );
  });

  it('refuses a backslash anywhere in the branch', () => {
    expect(() => listQuery({ branch: 'a"b\\c' })).toThrow('--branch: a backslash or control character cannot be in');
  });
});
