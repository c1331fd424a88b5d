#!/usr/bin/env node
// Conveyor's own `docs` step (conveyor.self.yml): the README and docs/ as a static site in OUT
// ($CONVEYOR_OUT), which the chain stores and publishes beside the packages like any repository's
// docs. Each Markdown file becomes an HTML page (README.md is index.html), links between the
// documents point at the pages, and other files under docs/ (the Grafana dashboard, the IAM
// policies) are copied as they are.
//
// The Markdown is what these documents use: ATX headings, fenced code, bullet and numbered lists,
// tables, paragraphs, and inline code, emphasis and links. Everything is HTML-escaped first; a
// link's target must be relative or http(s), so no document can put script into the site.
//
// Usage: node scripts/build-site.js OUT   (run from the repository's root; dependency-free)
'use strict';

const fs = require('node:fs');
const path = require('node:path');

function escape(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** `docs/operations.md` → `docs/operations.html`, README.md → index.html; anchors kept. */
function pageOf(target) {
  const [file, anchor] = target.split('#');
  const page = file.replace(/(^|\/)README\.md$/, '$1index.html').replace(/\.md$/, '.html');
  return anchor === undefined ? page : `${page}#${anchor}`;
}

function inline(text) {
  const codes = [];
  let s = text.replace(/`([^`]+)`/g, (_, c) => `\u0000${codes.push(`<code>${escape(c)}</code>`) - 1}\u0000`);
  s = escape(s);
  s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (all, label, href) => {
    const raw = href
      .replace(/&quot;/g, '"')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
    if (/^[a-z][a-z0-9+.-]*:/i.test(raw) && !/^https?:/i.test(raw)) return label;
    const target = /^https?:/i.test(raw) || raw.startsWith('#') ? raw : pageOf(raw);
    return `<a href="${escape(target)}">${label}</a>`;
  });
  s = s.replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>').replace(/(^|[\s(])\*([^*\s][^*]*)\*/g, '$1<em>$2</em>');
  // eslint-disable-next-line no-control-regex -- NUL marks the code spans set aside above
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => codes[Number(i)]);
}

function slug(text) {
  return text
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^a-z0-9 -]/g, '')
    .trim()
    .replace(/ +/g, '-');
}

/** Markdown (the subset above) → HTML body. */
function render(markdown) {
  const lines = markdown.split('\n');
  const out = [];
  let i = 0;
  const isBlockStart = (l) => /^(#{1,6} |```|\s*[-*] |\s*\d+\. |\|)/.test(l) || l.trim() === '';
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^(\s*)```(.*)$/.exec(line);
    if (fence) {
      const body = [];
      for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) body.push(lines[i]);
      i++;
      const lang = fence[2].trim().split(/\s/)[0];
      out.push(`<pre${lang ? ` class="${escape(lang)}"` : ''}><code>${escape(body.join('\n'))}</code></pre>`);
      continue;
    }
    const heading = /^(#{1,6}) (.*)$/.exec(line);
    if (heading) {
      const n = heading[1].length;
      out.push(`<h${n} id="${slug(heading[2])}">${inline(heading[2])}</h${n}>`);
      i++;
      continue;
    }
    if (line.startsWith('|')) {
      const rows = [];
      for (; i < lines.length && lines[i].startsWith('|'); i++) rows.push(lines[i]);
      const cells = (r) =>
        r
          .replace(/^\||\|$/g, '')
          .split('|')
          .map((c) => c.trim());
      const body = rows.filter((r) => !/^\|[\s:|-]+\|?$/.test(r));
      const [head, ...rest] = body;
      out.push(
        '<table>',
        `<tr>${cells(head)
          .map((c) => `<th>${inline(c)}</th>`)
          .join('')}</tr>`,
        ...rest.map(
          (r) =>
            `<tr>${cells(r)
              .map((c) => `<td>${inline(c)}</td>`)
              .join('')}</tr>`,
        ),
        '</table>',
      );
      continue;
    }
    const item = /^(\s*)([-*]|\d+\.) (.*)$/.exec(line);
    if (item) {
      const ordered = /\d/.test(item[2]);
      const items = [];
      for (; i < lines.length; i++) {
        const m = /^(\s*)([-*]|\d+\.) (.*)$/.exec(lines[i]);
        if (m) items.push(m[3]);
        else if (lines[i].trim() !== '' && /^\s+/.test(lines[i]) && items.length)
          items[items.length - 1] += ` ${lines[i].trim()}`;
        else break;
      }
      const tag = ordered ? 'ol' : 'ul';
      out.push(`<${tag}>${items.map((t) => `<li>${inline(t)}</li>`).join('')}</${tag}>`);
      continue;
    }
    if (line.trim() === '') {
      i++;
      continue;
    }
    const para = [];
    for (; i < lines.length && !(para.length && isBlockStart(lines[i])); i++) para.push(lines[i].trim());
    out.push(`<p>${inline(para.join(' '))}</p>`);
  }
  return out.join('\n');
}

function page(title, body, depth) {
  const up = depth ? '../'.repeat(depth) : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)} — Conveyor</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}
pre{background:#f4f4f4;padding:.75rem;overflow-x:auto}code{font-size:.9em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}</style>
</head><body><nav><a href="${up}index.html">Conveyor</a> · <a href="${up}docs/index.html">docs</a></nav>
${body}
</body></html>
`;
}

function main(argv) {
  const out = argv[0];
  if (!out || argv.length !== 1) {
    process.stderr.write('usage: node scripts/build-site.js OUT (from the repository root)\n');
    process.exit(2);
  }
  const docs = fs
    .readdirSync('docs', { recursive: true })
    .map((f) => path.join('docs', String(f)))
    .filter((f) => fs.statSync(f).isFile())
    .sort();
  const pages = [];
  let copied = 0;
  for (const src of ['README.md', ...docs]) {
    const dest = path.join(out, src.endsWith('.md') ? pageOf(src) : src);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    if (!src.endsWith('.md')) {
      fs.copyFileSync(src, dest);
      copied++;
      continue;
    }
    const text = fs.readFileSync(src, 'utf8');
    const title = (/^# (.*)$/m.exec(text) || [null, src])[1];
    fs.writeFileSync(dest, page(title, render(text), src.split('/').length - 1));
    pages.push([pageOf(src), title]);
  }
  const list = pages
    .filter(([p]) => p.startsWith('docs/') && p !== 'docs/index.html')
    .map(([p, t]) => `<li><a href="${escape(p.slice('docs/'.length))}">${escape(t)}</a></li>`);
  if (!pages.some(([p]) => p === 'docs/index.html')) {
    fs.writeFileSync(
      path.join(out, 'docs', 'index.html'),
      page('Documentation', `<h1>Documentation</h1>\n<ul>${list.join('')}</ul>`, 1),
    );
  }
  process.stdout.write(`site: ${pages.length} pages and ${copied} other files in ${out}\n`);
}

module.exports = { render, pageOf };

if (require.main === module) main(process.argv.slice(2));
