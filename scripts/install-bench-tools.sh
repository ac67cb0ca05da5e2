#!/usr/bin/env bash
# Install the programs `make bench` drives: nginx (the fake gateway and the reference
# reverse proxy), its echo module (the gateway's 2-second "slow" and read-the-whole-body
# "upload" locations) and wrk (the load generator), all from Debian.
#
# Idempotent and instant when nginx, the echo module and wrk are present. Runs as root
# (or with passwordless sudo; scripts/lib/apt.sh). The bench runs its own nginx
# instances in a temp dir, so the packaged service is neither started nor left enabled.
set -euo pipefail
source "${BASH_SOURCE[0]%/*}/lib/apt.sh"

echo_module=/usr/lib/nginx/modules/ngx_http_echo_module.so
packages=(nginx libnginx-mod-http-echo wrk)
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }
if have nginx && have wrk && [[ -f "$echo_module" ]]; then
  exit 0
fi

apt_install install-bench-tools nginx "${packages[@]}" || exit 1

for program in nginx wrk; do
  if ! have "$program"; then
    echo "install-bench-tools: $program is still missing after apt-get install" >&2
    exit 1
  fi
done
if [[ ! -f "$echo_module" ]]; then
  echo "install-bench-tools: $echo_module is still missing after apt-get install" >&2
  exit 1
fi
