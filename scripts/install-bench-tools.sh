#!/usr/bin/env bash
# Install the programs `make bench` drives: nginx (the fake gateway and the reference
# reverse proxy), its echo module (the gateway's 2-second "slow" and read-the-whole-body
# "upload" locations) and wrk (the load generator), all from Debian.
#
# Idempotent and instant when nginx, the echo module and wrk are present. Runs as root
# (or with passwordless sudo: `sudo -n` never waits on a password prompt); `apt-get
# update` only runs when an install is needed. The bench runs its own nginx instances in
# a temp dir, so the packaged service must not start on :80: while installing, a
# temporary policy-rc.d (exit 101) tells invoke-rc.d not to start services, unless the
# machine already has its own policy; on a systemd machine the unit is then disabled.
set -euo pipefail

echo_module=/usr/lib/nginx/modules/ngx_http_echo_module.so
packages=(nginx libnginx-mod-http-echo wrk)
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }
if have nginx && have wrk && [[ -f "$echo_module" ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-bench-tools: apt-get not found; install nginx (with its echo module," \
    "$echo_module) and wrk yourself" >&2
  exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    echo "install-bench-tools: need root (or passwordless sudo) to apt-get install" \
      "${packages[*]}; or install them yourself" >&2
    exit 1
  fi
  as_root=(sudo -n)
fi

policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
  "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  made_policy=1
fi
cleanup() {
  if [[ "$made_policy" -eq 1 ]]; then
    "${as_root[@]}" rm -f "$policy"
  fi
}
trap cleanup EXIT

echo "install-bench-tools: apt-get install ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  "${as_root[@]}" systemctl disable --now nginx.service >/dev/null 2>&1 || true
fi

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
