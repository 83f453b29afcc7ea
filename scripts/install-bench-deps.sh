#!/usr/bin/env bash
# Install the system (Debian) packages the benchmark and the deployment tests need:
#   - nginx   the production recipe's front (deploy/nginx.conf) and the bench's
#             ceilings: static GET, and PUT through ngx_http_dav_module
#             (`dav_methods PUT`), which Debian compiles into the nginx binary
#             itself (`nginx -V` lists --with-http_dav_module). Debian's
#             libnginx-mod-http-dav-ext adds only PROPFIND/OPTIONS: not needed.
#   - curl    the bench's HTTP client for large files (it keeps up with nginx)
#
# The package's service is never started here: nginx is only run by the bench and
# the tests, on loopback ports, with their own configuration. On a machine without
# a policy-rc.d, one that refuses service starts is put in place for the install.
#
# Idempotent and silent when everything is already present.
# Not root: uses sudo if available; otherwise fails when $CI is set, and on a
# laptop only warns (exit 0) so that the nginx tests skip.
set -euo pipefail

log() { printf 'install-bench-deps: %s\n' "$*" >&2; }

missing=()
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
    missing+=(nginx)
fi
if ! command -v curl >/dev/null 2>&1; then
    missing+=(curl)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

fail_or_warn() {
    if [[ -n "${CI:-}" ]]; then
        log "ERROR: $1"
        exit 1
    fi
    log "WARNING: $1 (the nginx tests will be skipped)"
    exit 0
}

if ! command -v apt-get >/dev/null 2>&1; then
    fail_or_warn "apt-get not found; please install manually: ${missing[*]}"
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        fail_or_warn "not root and no password-less sudo; run as root: apt-get install -y --no-install-recommends ${missing[*]}"
    fi
fi

apt_log="$(mktemp)"
policy_added=""
cleanup() {
    rm -f "$apt_log"
    if [[ -n "$policy_added" ]]; then
        "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    fi
}
trap cleanup EXIT

# Debian starts a newly installed nginx on port 80 unless policy-rc.d says no.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# added by install-bench-deps.sh for the duration of one install\nexit 101\n' |
        "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
fi

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

nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
if [[ ! -x "$nginx_bin" ]]; then
    log "ERROR: nginx still missing after install"
    exit 1
fi
if ! "$nginx_bin" -V 2>&1 | grep -q -- '--with-http_dav_module'; then
    log "ERROR: $nginx_bin was built without ngx_http_dav_module (dav_methods PUT)"
    exit 1
fi
log "done in $((SECONDS - start))s: $("$nginx_bin" -v 2>&1)"
