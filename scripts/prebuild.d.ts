// Types of scripts/prebuild.js for the TypeScript that calls it (test/setup, test/helpers).
export type EntryName = 'cli' | 'orchestrator' | 'builder' | 'api' | 'run-replay';
/** Entry name → its source file, relative to the checkout. */
export const ENTRIES: Record<EntryName, string>;
/** Bundles every entry into `outDir` (inside the checkout); resolves to name → bundle file. */
export function prebuild(outDir: string): Promise<Record<EntryName, string>>;
