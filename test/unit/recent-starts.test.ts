// The bounded cache of runs known to exist (api/recent-starts.ts), on a clock the test moves.
import { createRecentStarts } from '../../api/recent-starts';

describe('recent starts', () => {
  let t = 0;
  const now = () => t;
  beforeEach(() => (t = 1000));

  it('answers for an added ID until its TTL has passed, then forgets it', () => {
    const recent = createRecentStarts({ ttlMs: 100, now });
    expect(recent.has('pipeline/a/b/main/1')).toBe(false);
    recent.add('pipeline/a/b/main/1');
    t += 99;
    expect(recent.has('pipeline/a/b/main/1')).toBe(true);
    expect(recent.has('pipeline/a/b/main/2')).toBe(false);
    t += 1;
    expect(recent.has('pipeline/a/b/main/1')).toBe(false);
    expect(recent.size).toBe(0);
  });

  it('holds at most maxEntries, dropping the oldest first; adding again makes an ID the newest', () => {
    const recent = createRecentStarts({ ttlMs: 10_000, maxEntries: 3, now });
    for (const id of ['a', 'b', 'c']) {
      recent.add(id);
      t += 1;
    }
    recent.add('a');
    recent.add('d');
    expect(recent.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].filter((id) => recent.has(id))).toEqual(['a', 'c', 'd']);
  });

  it('drops expired entries when adding, so a full cache of stale entries does not linger', () => {
    const recent = createRecentStarts({ ttlMs: 10, maxEntries: 100, now });
    for (let i = 0; i < 50; i++) recent.add(`old-${i}`);
    t += 10;
    recent.add('new');
    expect(recent.size).toBe(1);
  });

  it('ttlMs 0 disables it; bad settings are refused', () => {
    const off = createRecentStarts({ ttlMs: 0, now });
    off.add('a');
    expect(off.has('a')).toBe(false);
    expect(() => createRecentStarts({ ttlMs: -1 })).toThrow(/ttlMs must be ≥ 0/);
    expect(() => createRecentStarts({ maxEntries: 0 })).toThrow(/maxEntries must be a positive integer/);
    expect(() => createRecentStarts({ maxEntries: 1.5 })).toThrow(/maxEntries/);
  });
});
