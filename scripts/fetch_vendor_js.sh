#!/usr/bin/env bash
# Fetch the two pieces of third-party JavaScript the built book serves itself,
# from the npm registry, into book/_vendor/ (gitignored; not committed):
#   ipywidgets/embed.js  -- @jupyter-widgets/html-manager: renders saved widget state
#   mathjax/             -- MathJax 3 (tex-mml-chtml + fonts): renders the equations
# With both served locally the book renders with no network at all.
set -euo pipefail
widgets_version="${HTML_MANAGER_VERSION:-1.0.15}"   # 1.x pairs with ipywidgets 8
mathjax_version="${MATHJAX_VERSION:-3.2.2}"
dest="book/_vendor"
command -v npm >/dev/null || { echo "error: npm is needed to fetch the book's JavaScript (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd_tmp() { (cd "$tmp" && npm pack --silent "$1" >/dev/null); }

cd_tmp "@jupyter-widgets/html-manager@${widgets_version}"
mkdir -p "$tmp/w" "$tmp/out/ipywidgets"
tar -xzf "$tmp"/jupyter-widgets-html-manager-*.tgz -C "$tmp/w" package/dist
test -s "$tmp/w/package/dist/embed.js" || { echo "error: embed.js missing from the npm package" >&2; exit 1; }
cp "$tmp/w/package/dist/embed.js" "$tmp"/w/package/dist/*.{woff,woff2,ttf,eot,svg} "$tmp/out/ipywidgets/" 2>/dev/null || true

cd_tmp "mathjax@${mathjax_version}"
mkdir -p "$tmp/m"
tar -xzf "$tmp"/mathjax-*.tgz -C "$tmp/m" package/es5
m="$tmp/m/package/es5"
test -s "$m/tex-mml-chtml.js" || { echo "error: tex-mml-chtml.js missing from the mathjax package" >&2; exit 1; }
mkdir -p "$tmp/out/mathjax"
cp -r "$m/tex-mml-chtml.js" "$m/output" "$m/input" "$m/ui" "$m/a11y" "$m/adaptors" "$tmp/out/mathjax/"
rm -rf "$tmp/out/mathjax/output/svg"

rm -rf "$dest.tmp" && mv "$tmp/out" "$dest.tmp"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "fetched html-manager ${widgets_version} and MathJax ${mathjax_version} into $dest ($(du -sh "$dest" | cut -f1))"
