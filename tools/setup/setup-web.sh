#!/usr/bin/env bash
# What the browser page and its tests need (web/, tests/it/browser.rs): Debian's Chromium,
# driven headless by playwright-core, and the page's npm packages (onnxruntime-web,
# playwright-core) in web/node_modules, exactly as web/package-lock.json pins them.
# Run as root, or with sudo available; does nothing that is already done.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "${SRGRAPH_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
    echo "== installing Chromium (Debian's chromium) for the browser tests"
    "$root/tools/setup/apt-install.sh" chromium || { echo "setup-web: or set SRGRAPH_CHROMIUM to a Chromium of your own" >&2; exit 1; }
fi
# npm ci starts from an empty node_modules each time: only when the lock file is newer than the install.
if ! [ -f "$root/web/node_modules/.package-lock.json" ] || [ "$root/web/package-lock.json" -nt "$root/web/node_modules/.package-lock.json" ]; then
    echo "== installing the page's npm packages (web/node_modules)"
    (cd "$root/web" && npm ci --no-audit --no-fund --loglevel=error)
fi
