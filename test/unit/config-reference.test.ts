// docs/configuration.md is generated from the conveyor.yml schema (scripts/config-reference.ts):
// it must be exactly what the schema renders today, and every key must say what it is for.
import fs from 'node:fs';
import { REFERENCE_FILE, configReference, referenceRows } from '../../scripts/config-reference';

describe('docs/configuration.md, the configuration reference', () => {
  it('is what the schema renders (run `npm run docs:config` after changing config/conveyor.ts)', async () => {
    const committed = fs.readFileSync(REFERENCE_FILE, 'utf8');
    const rendered = await configReference();
    // Compared line by line first, so a failure names the first line that differs.
    const a = committed.split('\n');
    const b = rendered.split('\n');
    const first = b.findIndex((line, i) => line !== a[i]);
    expect(first === -1 ? null : { line: first + 1, committed: a[first], schema: b[first] }).toBeNull();
    expect(committed).toBe(rendered);
  });

  it('documents every key of the schema with a .describe() text', () => {
    const undocumented = referenceRows()
      .filter((r) => !r.description?.trim())
      .map((r) => r.path);
    expect(undocumented).toEqual([]);
  });

  it('lists the keys a reader looks for, with their defaults', () => {
    const rows = new Map(referenceRows().map((r) => [r.path, r]));
    expect(rows.get('api.statusPort')?.default).toBe('3001');
    expect(rows.get('repositories[].stepTimeoutSeconds')?.default).toBe('1800');
    expect(rows.get('storage.artifacts')?.required).toBe(true);
    expect(rows.get('distros.<distro>.format')?.type).toBe('"deb" \\| "rpm"');
    expect(rows.get('signing.validDays.production')).toBeDefined();
    expect(rows.get('chat.access.<repository>')).toBeDefined();
  });
});
