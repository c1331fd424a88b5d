// 5. YUM index. Repository metadata for N generated .rpms: ours (the publisher's YUM index
// writer, activities/repository/yum-format.ts: rpm -qp check per file, createrepo_c over the new
// rpms, fragments kept per package, primary/filelists/other concatenated and gzipped, repomd.xml;
// no gpg on either side) ÷ `createrepo_c --no-database`, interleaved. Incremental: 1 more rpm,
// ours from the kept fragments ÷ `createrepo_c --update --no-database` over the previous repodata.
import fs from 'node:fs';
import path from 'node:path';
import type { PublishedPackage } from '../activities/repository/repository-state';
import { yumFormat } from '../activities/repository/yum-format';
import type { DistroSpec } from '../common/types';
import { makeRpms, writeIndexes, type Fixture } from './fixtures';
import { interleave, median, ms, r2, requireTool, run, timed, type BenchContext, type Benchmark } from './harness';

const SPEC: DistroSpec = { format: 'rpm', arch: 'x86_64' };
const target = { environment: 'staging' as const, channel: 'unstable', distro: 'el9', distroSpec: SPEC };

async function oursIndex(fixtures: Fixture[], out: string, kept: PublishedPackage[] = []): Promise<PublishedPackage[]> {
  return writeIndexes(yumFormat(target), fixtures, out, { kept, hashed: true });
}

const peer = (ctx: BenchContext, dir: string, update = false) =>
  run(ctx, 'createrepo_c', [...(update ? ['--update'] : []), '--no-database', '--quiet', dir]);

/** A repository dir of hard links to the fixtures (createrepo_c writes repodata/ beside them). */
function repoDir(dir: string, fixtures: Fixture[]): string {
  fs.mkdirSync(path.join(dir, 'Packages'), { recursive: true });
  for (const f of fixtures) fs.linkSync(f.path, path.join(dir, 'Packages', f.ref.file));
  return dir;
}

export const yumIndex: Benchmark = {
  name: 'yum-index',
  describe: 'YUM repodata: ours ÷ createrepo_c; incremental +1 ÷ createrepo_c --update',
  async run(ctx) {
    requireTool('createrepo_c', 'apt-get install -y createrepo-c');
    requireTool('rpmbuild', 'apt-get install -y rpm');
    const n = ctx.quick ? 300 : 2000;
    const rounds = ctx.quick ? 2 : 3;
    const gen = await timed(() => makeRpms(ctx, path.join(ctx.dir, 'rpms'), n + 1, { distro: 'el9' }));
    ctx.log(`generated ${n + 1} rpms in ${ms(gen.ms)} ms`);
    const fixtures = gen.value.slice(0, n);
    const extra = gen.value.slice(n);
    const out = (side: string, r: number) => path.join(ctx.dir, `${side}-${r}`);
    let kept: PublishedPackage[] = [];
    const full = await interleave(ctx, rounds, {
      prepare: (side, r) =>
        Promise.resolve(void (side === 'peer' ? repoDir(out(side, r), fixtures) : fs.mkdirSync(out(side, r)))),
      ours: async (r) => void (kept = await oursIndex(fixtures, out('ours', r))),
      peer: async (r) => void (await peer(ctx, out('peer', r))),
    });
    const inc = await interleave(ctx, rounds, {
      prepare: (side, r) =>
        Promise.resolve(
          void (side === 'peer'
            ? fs.linkSync(extra[0].path, path.join(out('peer', r), 'Packages', extra[0].ref.file))
            : fs.mkdirSync(out('inc', r))),
        ),
      ours: async (r) => void (await oursIndex(extra, out('inc', r), kept)),
      peer: async (r) => void (await peer(ctx, out('peer', r), true)),
    });
    const primary = fs.readdirSync(path.join(out('ours', 0), 'yum/el9/unstable/repodata')).length;
    return {
      rows: [
        {
          measure: `repodata for ${n} rpms: ours (median of ${rounds})`,
          value: ms(median(full.ours)),
          unit: 'ms',
          note: `${primary} files in repodata/`,
        },
        {
          measure: `repodata for ${n} rpms: createrepo_c`,
          value: ms(median(full.peer)),
          unit: 'ms',
          note: '--no-database',
        },
        { measure: 'full: ours ÷ createrepo_c', value: r2(full.ratio), unit: '×', note: 'target ≤ 1.2' },
        {
          measure: 'incremental +1 rpm: ours',
          value: ms(median(inc.ours)),
          unit: 'ms',
          note: 'fragments of the N kept, as in the state manifest',
        },
        {
          measure: 'incremental +1 rpm: createrepo_c --update',
          value: ms(median(inc.peer)),
          unit: 'ms',
          note: '--update --no-database',
        },
        { measure: 'incremental: ours ÷ createrepo_c --update', value: r2(inc.ratio), unit: '×', note: 'target ≤ 1.2' },
      ],
      figures: {
        rpms: n,
        ours_ms: ms(median(full.ours)),
        createrepo_ms: ms(median(full.peer)),
        ratio: r2(full.ratio),
        inc_ours_ms: ms(median(inc.ours)),
        inc_createrepo_ms: ms(median(inc.peer)),
        inc_ratio: r2(inc.ratio),
      },
      notes: [
        'ours = rpm header check per file (in-process, rpm -qp only when it does not match) + createrepo_c over the new rpms + per-package fragments concatenated (gzip -9) + repomd.xml, rpm signing stubbed out; ' +
          'peer = createrepo_c --no-database over the same files',
      ],
    };
  },
};
