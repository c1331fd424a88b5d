// The checks a publish holds signPackages' rpm index facts to before they reach a repository's
// metadata (activities/repository/rpm-index-facts.ts): one well-formed <package> element per
// fragment, the reference's SHA-256, name, version and arch, and the location the facts promise.
// The fragments below are createrepo_c 1.0's output for a small noarch rpm, as stored.
import type { ArtifactRef } from '../../common/types';
import { oneElement, parseRpmIndexFacts } from '../../activities/repository/rpm-index-facts';
import { relocated } from '../../activities/repository/yum-format';

const SHA = '67c23ae750fce42f7d8e460b142a0a1272330f85b141b1a76139bb0faeb515a5';
const FILE = 'tally-2.3.0-7.noarch.rpm';
const PRIMARY = `<package type="rpm">
  <name>tally</name>
  <arch>noarch</arch>
  <version epoch="0" ver="2.3.0" rel="7"/>
  <checksum type="sha256" pkgid="YES">${SHA}</checksum>
  <summary>test &amp; &lt;pkg&gt;</summary>
  <description>Built "here".</description>
  <packager></packager>
  <url></url>
  <time file="1796230147" build="1796230147"/>
  <size package="6058" installed="2" archive="264"/>
  <location href="Packages/${FILE}"/>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:header-range start="4504" end="5949"/>
    <rpm:provides>
      <rpm:entry name="tally" flags="EQ" epoch="0" ver="2.3.0" rel="7"/>
    </rpm:provides>
  </format>
</package>`;
const FILELISTS = `<package pkgid="${SHA}" name="tally" arch="noarch">
  <version epoch="0" ver="2.3.0" rel="7"/>
  <file>/usr/share/tally/VERSION</file>
</package>`;
const OTHER = `<package pkgid="${SHA}" name="tally" arch="noarch">
  <version epoch="0" ver="2.3.0" rel="7"/>
</package>`;

const ref = {
  key: `signed/F/packages/acme/tally/main/7/c0ffee/el9/${FILE}`,
  sha256: SHA,
  size: 6058,
  name: 'tally',
  version: '2.3.0-7',
  arch: 'noarch',
  format: 'rpm',
  distro: 'el9',
  file: FILE,
} as ArtifactRef;

const facts = (o: Record<string, unknown> = {}) =>
  Buffer.from(
    JSON.stringify({
      format: 'conveyor-yum-index/1',
      size: 6058,
      md5: 'd41d8cd98f00b204e9800998ecf8427e',
      sha256: SHA,
      primary: PRIMARY,
      filelists: FILELISTS,
      other: OTHER,
      ...o,
    }),
  );

describe('rpm index facts', () => {
  it('accepts one well-formed element as libxml2 writes it, and nothing else', () => {
    for (const f of [PRIMARY, FILELISTS, OTHER]) expect(oneElement(f, 'package')).toBe(true);
    const refused = [
      // A second element after the first: a package the rpm does not hold.
      `${OTHER}<package pkgid="${SHA}" name="sudo" arch="noarch"></package>`,
      // The document around it closed and a new one begun.
      OTHER.replace('</package>', '</package></otherdata><otherdata>'),
      // Closing tags out of order, an element left open, text outside the element.
      OTHER.replace('<version epoch="0" ver="2.3.0" rel="7"/>', '<version></package></version>'),
      OTHER.replace('</package>', ''),
      `${OTHER} `,
      ` ${OTHER}`,
      // What createrepo_c never writes: comments, CDATA, processing instructions, a bare & or <.
      OTHER.replace('<version', '<!-- x --><version'),
      OTHER.replace('<version', '<![CDATA[ </package> ]]><version'),
      OTHER.replace('<version', '<?x y?><version'),
      PRIMARY.replace('test &amp;', 'test &'),
      PRIMARY.replace('&lt;pkg', '<pkg'),
      PRIMARY.replace('Built', 'Built\u0001'),
      // Attributes without quotes, or in single quotes; another root element.
      OTHER.replace(`pkgid="${SHA}"`, `pkgid=${SHA}`),
      OTHER.replace(`pkgid="${SHA}"`, `pkgid='${SHA}'`),
      '<metadata></metadata>',
      '',
    ];
    for (const f of refused) expect([f, oneElement(f, 'package')]).toEqual([f, false]);
  });

  it('parses facts that describe the reference', () => {
    expect(parseRpmIndexFacts(facts(), ref)).toEqual({
      fragments: { primary: PRIMARY, filelists: FILELISTS, other: OTHER },
      hashes: { md5: 'd41d8cd98f00b204e9800998ecf8427e', sha256: SHA, size: 6058 },
    });
  });

  it('says why facts cannot stand in for the rpm', () => {
    const other = 'f'.repeat(64);
    const cases: [Buffer, string][] = [
      [Buffer.from('{'), 'it is not JSON'],
      [facts({ format: 'conveyor-apt-index/1' }), 'it is not conveyor-yum-index/1'],
      [facts({ md5: 'x' }), 'its md5 is not a hash'],
      [facts({ sha256: other }), `it describes ${other} (6058 bytes), not the reference's ${SHA} (6058 bytes)`],
      [facts({ size: 1 }), `it describes ${SHA} (1 bytes), not the reference's ${SHA} (6058 bytes)`],
      [facts({ other: undefined }), 'it lacks a fragment'],
      [
        facts({ primary: PRIMARY.replace('</package>', '</package><package type="rpm"><name>sudo</name></package>') }),
        'its primary fragment is not one well-formed <package> element',
      ],
      [
        facts({ primary: PRIMARY.replace(`>${SHA}<`, `>${other}<`) }),
        `its primary fragment does not name ${SHA} as the package's checksum`,
      ],
      [
        facts({ primary: PRIMARY.replace(`Packages/${FILE}`, `../${FILE}`) }),
        `its primary fragment does not locate the rpm at Packages/${FILE}`,
      ],
      [
        facts({ primary: PRIMARY.replace('ver="2.3.0" rel="7"/>\n  <checksum', 'ver="9.9" rel="7"/>\n  <checksum') }),
        'its primary fragment lists tally 9.9-7 noarch, but the reference says tally 2.3.0-7 noarch',
      ],
      [
        facts({ filelists: FILELISTS.replace('name="tally"', 'name="sudo"') }),
        `its filelists fragment does not begin with <package pkgid="${SHA}" name="tally" arch="noarch">`,
      ],
      [
        facts({ other: OTHER.replace(SHA, other) }),
        `its other fragment does not begin with <package pkgid="${SHA}" name="tally" arch="noarch">`,
      ],
    ];
    for (const [bytes, why] of cases) expect(parseRpmIndexFacts(bytes, ref)).toBe(why);
  });

  it('moves the location of a re-signed rpm and nothing else', () => {
    expect(relocated(PRIMARY, FILE, `Packages/${FILE}`)).toBe(PRIMARY);
    const moved = relocated(PRIMARY, FILE, `Packages/0123456789abcdef/${FILE}`);
    expect(moved).toBe(PRIMARY.replace(`Packages/${FILE}`, `Packages/0123456789abcdef/${FILE}`));
    expect(() => relocated(PRIMARY, 'other.rpm', 'Packages/x/other.rpm')).toThrow(
      'internal: the fragment of other.rpm does not locate it at Packages/',
    );
  });
});
