#!/usr/bin/env bash
# Install and build the JavaScript client (clients/js): `npm ci` from its
# package-lock.json (packages from the npm registry only), then `npm run build`
# (tsc -> clients/js/dist). Quick and silent when nothing changed since the last
# run: a stamp in node_modules records the hash of the lock file and the sources.
# Without node and npm it warns on a laptop (the JavaScript client's tests skip)
# and fails in CI.
set -euo pipefail
cd "$(dirname "$0")/../clients/js"

log() { printf 'install-js-deps: %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [[ -n "${CI:-}" ]]; then
        log "ERROR: node and npm are needed for the JavaScript client (apt-get install nodejs npm)"
        exit 1
    fi
    log "WARNING: node and npm not found; the JavaScript client's tests will be skipped"
    exit 0
fi

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
log "done in $((SECONDS - started))s (node $(node --version))"
