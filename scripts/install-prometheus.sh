#!/usr/bin/env bash
# Install Debian's `prometheus` package, which provides /usr/bin/prometheus and
# /usr/bin/promtool. The observability tests drive both for real.
#
# Idempotent and instant when both programs are already on PATH. Runs as root in CI;
# falls back to sudo when run as a normal user. `apt-get update` only runs when an
# install is actually needed.
#
# The package's maintainer scripts would like to start a prometheus service on :9090.
# We don't want one (the tests start their own Prometheus on a free loopback port), so
# while installing we tell invoke-rc.d "don't start services" with a temporary
# policy-rc.d (exit 101), unless the machine already has its own policy.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-prometheus: apt-get not found; install prometheus and promtool (>= 2.x) yourself" >&2
  exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-prometheus: need root (or sudo) to apt-get install prometheus" >&2
    exit 1
  fi
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

# Other installers may hold the dpkg lock for a moment; wait for it rather than fail.
apt_opts=(-o DPkg::Lock::Timeout=300 -q)
echo "install-prometheus: installing Debian's prometheus package (prometheus + promtool)" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get "${apt_opts[@]}" install -y --no-install-recommends prometheus

command -v promtool >/dev/null 2>&1 || { echo "install-prometheus: promtool missing after install" >&2; exit 1; }
command -v prometheus >/dev/null 2>&1 || { echo "install-prometheus: prometheus missing after install" >&2; exit 1; }
echo "install-prometheus: $(prometheus --version 2>&1 | head -n 1)" >&2
