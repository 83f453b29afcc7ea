#!/usr/bin/env bash
# Install the system (Debian) packages the test suite needs:
#   - chromium            headless browser driven by Playwright (tests marked `browser`)
#   - fonts-dejavu-core   so that screenshots show legible text
#
# Playwright's own browser download does not work on our machines, so the
# tests use Debian's /usr/bin/chromium instead (see tests/support/browser.py).
# Idempotent and silent when everything is already present; root, sudo and CI
# handling in scripts/apt-install.sh.
set -euo pipefail
APT_LABEL=install-system-deps
APT_SKIPS="browser tests will be skipped"
source "$(dirname "$0")/apt-install.sh"

CHROMIUM_BIN=/usr/bin/chromium
FONT_PKG=fonts-dejavu-core

missing=()
if [[ ! -x "$CHROMIUM_BIN" ]]; then
    missing+=(chromium)
fi
if ! dpkg-query -W -f='${Status}' "$FONT_PKG" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$FONT_PKG")
fi
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

apt_install "${missing[@]}"
if [[ ! -x "$CHROMIUM_BIN" ]]; then
    log "ERROR: $CHROMIUM_BIN still missing after install"
    exit 1
fi
log "done in $((SECONDS - apt_started))s: $("$CHROMIUM_BIN" --version 2>/dev/null || echo 'chromium (version unknown)')"
