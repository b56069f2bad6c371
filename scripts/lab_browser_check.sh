#!/usr/bin/env bash
# Presses the live lab's button on chapter 1 in headless Chromium and waits
# for this machine's table (see lab_browser_check.mjs). Needs chromium and
# node; installs puppeteer-core (the driver only, no browser download) under
# target/browser-check/.
#
#   scripts/lab_browser_check.sh quick     # or: full
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install -y nodejs npm)" >&2; exit 1; }
done
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  echo "error: chromium not found (apt-get install -y chromium, or set CHROMIUM=/path/to/chrome)" >&2
  exit 1
fi
mkdir -p target/browser-check
if [ ! -d target/browser-check/node_modules/puppeteer-core ]; then
  (cd target/browser-check && npm init -y >/dev/null && npm install --silent puppeteer-core@23 >/dev/null)
fi
cargo build --release --quiet --bin event-loops-vs-threads --examples
cp scripts/lab_browser_check.mjs target/browser-check/check.mjs
PROJECT="$PWD" exec node target/browser-check/check.mjs "${1:-quick}"
