#!/usr/bin/env bash
# Install the JavaScript the tests need, from the npm registry only (never a CDN):
#  - tests/browser_js: packages the browser tests load in Chromium (tus-js-client),
#    `npm ci` from its package-lock.json;
#  - clients/js: the JavaScript client, `npm ci` then `npm run build` (tsc -> dist/).
# Installs Debian's nodejs and npm first when npm is missing (root, sudo and CI
# handling in scripts/apt-install.sh). Quick and silent when nothing changed: each
# folder keeps a stamp of what it was installed from.
set -euo pipefail
APT_LABEL=install-js-deps
APT_SKIPS="the browser and JavaScript client tests will be skipped"
source "$(dirname "$0")/apt-install.sh"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
command -v npm >/dev/null 2>&1 || exit 0  # on a laptop without npm: those tests skip

# -- tests/browser_js ------------------------------------------------------------------
ASSETS="$ROOT/tests/browser_js"
STAMP="$ASSETS/node_modules/.installed-from-package-lock.json"
if ! { [[ -f "$STAMP" ]] && cmp -s "$STAMP" "$ASSETS/package-lock.json"; }; then
    log "npm ci in $ASSETS"
    (cd "$ASSETS" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$ASSETS/package-lock.json" "$STAMP"
fi

# -- clients/js ----------------------------------------------------------------------------
CLIENT="$ROOT/clients/js"
cd "$CLIENT"
stamp=node_modules/.concierge-build-stamp
state="$(cat package.json package-lock.json tsconfig.json src/*.ts | sha256sum | cut -d' ' -f1) $(node --version)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$state" && -f dist/index.js ]]; then
    exit 0
fi
started=$SECONDS
npm_log="$(mktemp)"
trap 'rm -f "$npm_log"' EXIT
if ! npm ci --no-audit --no-fund >"$npm_log" 2>&1 || ! npm run build >>"$npm_log" 2>&1; then
    cat "$npm_log" >&2
    log "ERROR: npm ci or npm run build failed in clients/js"
    exit 1
fi
printf '%s' "$state" >"$stamp"
log "clients/js built in $((SECONDS - started))s (node $(node --version))"
