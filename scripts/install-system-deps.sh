#!/usr/bin/env bash
# Install the system (Debian) packages the test suite needs:
#   - chromium            headless browser driven by Playwright (tests marked `browser`)
#   - fonts-dejavu-core   so that screenshots show legible text
#
# Playwright's own browser download does not work on our machines, so the
# tests use Debian's /usr/bin/chromium instead (see tests/support/browser.py).
#
# Idempotent and silent when everything is already present.
# Not root: uses sudo if available; otherwise fails when $CI is set, and on a
# laptop only warns (exit 0) so that the browser tests skip.
set -euo pipefail

CHROMIUM_BIN=/usr/bin/chromium
FONT_PKG=fonts-dejavu-core

log() { printf 'install-system-deps: %s\n' "$*" >&2; }

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
if [[ ! -x "$CHROMIUM_BIN" ]]; then
    missing+=(chromium)
fi
if ! pkg_installed "$FONT_PKG"; then
    missing+=("$FONT_PKG")
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    msg="apt-get not found; please install manually: ${missing[*]}"
    if [[ -n "${CI:-}" ]]; then
        log "ERROR: $msg"
        exit 1
    fi
    log "WARNING: $msg (browser tests will be skipped)"
    exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        msg="not root and sudo unavailable; run as root: apt-get install -y --no-install-recommends ${missing[*]}"
        if [[ -n "${CI:-}" ]]; then
            log "ERROR: $msg"
            exit 1
        fi
        log "WARNING: $msg (browser tests will be skipped)"
        exit 0
    fi
fi

# Keep apt's chatter in a log; show it only if something fails.
apt_log="$(mktemp)"
trap 'rm -f "$apt_log"' EXIT
run_apt() {
    # Wait for the dpkg lock (another install may be running) instead of failing.
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$apt_log" 2>&1; then
        log "ERROR: apt-get $* failed:"
        cat "$apt_log" >&2
        exit 1
    fi
}

log "installing: ${missing[*]}"
start=$SECONDS
run_apt update -q
run_apt install -y -q --no-install-recommends "${missing[@]}"

if [[ ! -x "$CHROMIUM_BIN" ]]; then
    log "ERROR: $CHROMIUM_BIN still missing after install"
    exit 1
fi
log "done in $((SECONDS - start))s: $("$CHROMIUM_BIN" --version 2>/dev/null || echo 'chromium (version unknown)')"
