// The audit trail's pure parts: keys per day in time order, --since, and what an entry may hold.
import { checkEntry } from '../../activities/audit';
import { auditKey, daysBetween, parseSince } from '../../common/audit';

describe('audit trail', () => {
  it('keys entries by day, in time order, by a stable id', () => {
    const at = '2026-12-01T18:27:47.138Z';
    expect(auditKey('', { at }, 'run-1')).toBe('audit/2026-12-01/2026-12-01T18-27-47-138Z-run-1.json');
    expect(auditKey('conveyor/', { at }, 'x')).toMatch(/^conveyor\/audit\/2026-12-01\//);
    expect(auditKey('', { at: '2026-12-01T09:00:00.000Z' }, 'z') < auditKey('', { at }, 'a')).toBe(true);
  });

  it('reads --since as a duration or a date, and lists the days it spans', () => {
    const now = new Date('2026-12-08T12:00:00Z');
    expect(parseSince('7d', now).toISOString()).toBe('2026-12-01T12:00:00.000Z');
    expect(parseSince('90m', now).toISOString()).toBe('2026-12-08T10:30:00.000Z');
    expect(parseSince('2026-11-30', now).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(() => parseSince('last week', now)).toThrow(/--since/);
    expect(daysBetween(new Date('2026-11-30T23:00:00Z'), new Date('2026-12-02T01:00:00Z'))).toEqual([
      '2026-11-30',
      '2026-12-01',
      '2026-12-02',
    ]);
  });

  it('refuses malformed entries and bounds every field', () => {
    const ok = { at: '2026-12-01T00:00:00Z', by: 'alice', action: 'approve' as const, target: 't', accepted: true };
    expect(checkEntry(ok, 'abc-1')).toEqual({ ...ok, at: '2026-12-01T00:00:00.000Z' });
    expect(() => checkEntry(ok, '../x')).toThrow(/bad id/);
    expect(() => checkEntry({ ...ok, action: 'delete' as never }, 'a')).toThrow(/unknown action/);
    expect(() => checkEntry({ ...ok, at: 'yesterday' }, 'a')).toThrow(/bad time/);
    expect(checkEntry({ ...ok, why: 'x'.repeat(10000), by: '' }, 'a')).toMatchObject({ by: 'unknown' });
    expect(checkEntry({ ...ok, why: 'x'.repeat(10000) }, 'a').why).toHaveLength(4096);
  });
});
