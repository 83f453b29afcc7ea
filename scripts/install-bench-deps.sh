#!/usr/bin/env bash
# Install the system (Debian) packages the benchmark and the deployment tests need:
#   - nginx   the production recipe's front (deploy/nginx.conf) and the bench's
#             ceilings: static GET, and PUT through ngx_http_dav_module
#             (`dav_methods PUT`), which Debian compiles into the nginx binary
#             itself (`nginx -V` lists --with-http_dav_module). Debian's
#             libnginx-mod-http-dav-ext adds only PROPFIND/OPTIONS: not needed.
#   - curl    the bench's HTTP client for large files (it keeps up with nginx)
#
# The package's service is never started: nginx is only run by the bench and the
# tests, on loopback ports, with their own configuration. Idempotent and silent
# when everything is already present; root, sudo and CI handling in
# scripts/apt-install.sh.
set -euo pipefail
APT_LABEL=install-bench-deps
APT_SKIPS="the nginx tests will be skipped"
source "$(dirname "$0")/apt-install.sh"

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

apt_install "${missing[@]}"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
if [[ ! -x "$nginx_bin" ]]; then
    log "ERROR: nginx still missing after install"
    exit 1
fi
if ! "$nginx_bin" -V 2>&1 | grep -q -- '--with-http_dav_module'; then
    log "ERROR: $nginx_bin was built without ngx_http_dav_module (dav_methods PUT)"
    exit 1
fi
log "done in $((SECONDS - apt_started))s: $("$nginx_bin" -v 2>&1)"
