#!/usr/bin/env bash
# Install the JavaScript packages the browser tests load in Chromium (tus-js-client),
# pinned in tests/browser_js/package.json and package-lock.json, with `npm ci`.
# Installs Debian's nodejs and npm first when npm is missing (root, sudo and CI
# handling in scripts/apt-install.sh). Idempotent: skipped when node_modules was
# installed from the same lock file.
set -euo pipefail
APT_LABEL=install-js-deps
APT_SKIPS="the compatibility browser tests will be skipped"
source "$(dirname "$0")/apt-install.sh"

ASSETS="$(cd "$(dirname "$0")/../tests/browser_js" && pwd)"
STAMP="$ASSETS/node_modules/.installed-from-package-lock.json"

if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
if [[ -f "$STAMP" ]] && cmp -s "$STAMP" "$ASSETS/package-lock.json"; then
    exit 0
fi
log "npm ci in $ASSETS"
(cd "$ASSETS" && npm ci --no-audit --no-fund --loglevel=error)
cp "$ASSETS/package-lock.json" "$STAMP"
