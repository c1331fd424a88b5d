#!/bin/sh
# Writes the sample's documentation site: docs.sh VERSION OUT. index.html names the version,
# examples.html shows the README's examples, the blocks marked `conveyor-example` (HTML-escaped).
set -eu
version=$1
out=$2
esc() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }
mkdir -p "$out"
cat > "$out/index.html" <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>widget $version</title></head>
<body>
<h1>widget $version</h1>
<p>The Conveyor demo's sample program.</p>
<p><a href="examples.html">Examples</a></p>
</body>
</html>
HTML
{
  printf '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>widget %s: examples</title></head>\n<body>\n' "$version"
  printf '<h1>Examples</h1>\n<pre>\n'
  awk '/^```/ { if (inside) { inside = 0; print ""; next } if ($0 ~ /conveyor-example/) { inside = 1; next } } inside' README.md | esc
  printf '</pre>\n<p><a href="index.html">widget %s</a></p>\n</body>\n</html>\n' "$version"
} > "$out/examples.html"
echo "docs: widget $version written to $out"
