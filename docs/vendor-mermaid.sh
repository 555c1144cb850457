#!/usr/bin/env bash
# Put a copy of Mermaid (from the npm registry, with npm) at docs/generated/mermaid.min.js.
#
# The docs build (docs/hooks.py) serves it when it is there, so the site's diagrams render
# without loading Mermaid from a CDN: offline, and in the browser test of tests/test_docs.py.
# Without it, mkdocs-material loads Mermaid 11 from its CDN in the reader's browser.
# Usage: bash docs/vendor-mermaid.sh [VERSION]   (default: 11, the major mkdocs-material uses)
set -euo pipefail
cd "$(dirname "$0")"
version="${1:-11}"
target=generated/mermaid.min.js
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mermaid@$version" > /dev/null)
tar -xzf "$tmp"/mermaid-*.tgz -C "$tmp" package/dist/mermaid.min.js
mkdir -p generated
cp "$tmp/package/dist/mermaid.min.js" "$target"
echo "docs/$target: mermaid $(tar -xzOf "$tmp"/mermaid-*.tgz package/package.json | sed -n 's/^  "version": "\(.*\)",$/\1/p')"
