# Sourced by scripts/install-*.sh: install Debian packages the tests or the bench need.
#
# Before sourcing, set APT_LABEL (prefix of log lines) and APT_SKIPS (what a laptop
# without the packages loses, for the warning). Then call: apt_install PKG...
#
# Not root: uses password-less sudo if available; otherwise (and without apt-get)
# fails when $CI is set, and on a laptop only warns and exits 0, so that the tests
# needing the packages skip. Services the packages ship are not started (a
# policy-rc.d refusing starts is in place for the install when there is none).
# apt's chatter goes to a log, shown only if something fails; the dpkg lock is
# waited for (another install may be running).

log() { printf '%s: %s\n' "$APT_LABEL" "$*" >&2; }

fail_or_warn() {
    if [[ -n "${CI:-}" ]]; then
        log "ERROR: $1"
        exit 1
    fi
    log "WARNING: $1 ($APT_SKIPS)"
    exit 0
}

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        fail_or_warn "apt-get not found; please install manually: $*"
    fi
    SUDO=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO=(sudo -n)
        else
            fail_or_warn "not root and no password-less sudo; run as root: apt-get install -y --no-install-recommends $*"
        fi
    fi
    apt_log="$(mktemp)"
    policy_added=""
    trap '_apt_cleanup' EXIT
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# added by scripts/apt-install.sh for the duration of one install\nexit 101\n' |
            "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    log "installing: $*"
    apt_started=$SECONDS
    _run_apt update -q
    _run_apt install -y -q --no-install-recommends "$@"
}

_run_apt() {
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$apt_log" 2>&1; then
        log "ERROR: apt-get $* failed:"
        cat "$apt_log" >&2
        exit 1
    fi
}

_apt_cleanup() {
    rm -f "$apt_log"
    if [[ -n "$policy_added" ]]; then
        "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    fi
}
