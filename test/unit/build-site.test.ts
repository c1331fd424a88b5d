// scripts/build-site.js, Conveyor's own docs step: what a document may and may not put in the site.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { render, pageOf } = require('../../scripts/build-site') as {
  render: (markdown: string) => string;
  pageOf: (target: string) => string;
};

describe('build-site', () => {
  it('renders headings, code, lists and tables, and links documents to their pages', () => {
    const html = render(
      [
        '# Title',
        'See [operations](docs/operations.md#retry) and [the top](../README.md).',
        '',
        '```sh',
        'conveyor list <x>',
        '```',
        '- one',
        '- `two`',
        '',
        '| a | b |',
        '|---|---|',
        '| 1 | **2** |',
      ].join('\n'),
    );
    expect(html).toContain('<h1 id="title">Title</h1>');
    expect(html).toContain('<a href="docs/operations.html#retry">operations</a>');
    expect(html).toContain('<a href="../index.html">the top</a>');
    expect(html).toContain('<pre class="sh"><code>conveyor list &lt;x&gt;</code></pre>');
    expect(html).toContain('<ul><li>one</li><li><code>two</code></li></ul>');
    expect(html).toContain('<tr><td>1</td><td><strong>2</strong></td></tr>');
  });

  it('escapes HTML and drops links that are not relative or http(s)', () => {
    const html = render('<script>alert(1)</script> [x](javascript:alert(1)) [y](https://example.com/"a)');
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;');
    expect(html).not.toContain('javascript:');
    expect(html).toContain('<a href="https://example.com/&quot;a">y</a>');
  });

  it('maps README.md to index.html in any folder', () => {
    expect(pageOf('README.md')).toBe('index.html');
    expect(pageOf('docs/iam/README.md')).toBe('docs/iam/index.html');
    expect(pageOf('docs/a.md#x')).toBe('docs/a.html#x');
  });
});
