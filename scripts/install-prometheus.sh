#!/usr/bin/env bash
# Install Debian's `prometheus` package, which provides /usr/bin/prometheus and
# /usr/bin/promtool. The observability tests drive both for real.
#
# Idempotent and instant when both programs are already on PATH. Runs as root in CI;
# as a normal user it needs passwordless sudo (`sudo -n`: it never waits on a password
# prompt, it says so and stops). `apt-get update` only runs when an install is needed.
#
# The package's maintainer scripts would like to start a prometheus service on :9090.
# We don't want one (the tests start their own Prometheus on a free loopback port), so
# while installing we tell invoke-rc.d "don't start services" with a temporary
# policy-rc.d (exit 101), unless the machine already has its own policy; on a systemd
# machine the unit the package enables is then disabled (and stopped, if it runs).
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
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-prometheus: need root (or passwordless sudo) to apt-get install prometheus;" \
      "or install prometheus and promtool yourself" >&2
    exit 1
  fi
  if ! sudo -n true 2>/dev/null; then
    echo "install-prometheus: sudo would ask for a password; run as root, allow passwordless" \
      "sudo, or install Debian's prometheus package yourself (sudo apt-get install prometheus)" >&2
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

# Other installers may hold the dpkg lock for a moment; wait for it rather than fail.
# DPkg::Lock::Timeout covers the dpkg lock that `install` takes; the apt lists lock that
# `update` takes is not covered by apt 2.6's manual, hence the retries around `update`.
apt_opts=(-o DPkg::Lock::Timeout=300 -q)
echo "install-prometheus: installing Debian's prometheus package (prometheus + promtool)" >&2
for attempt in 1 2 3 4 5 6; do
  if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update; then
    break
  fi
  if [[ "$attempt" -eq 6 ]]; then
    echo "install-prometheus: apt-get update kept failing" >&2
    exit 1
  fi
  echo "install-prometheus: apt-get update failed (apt lists locked by another apt?);" \
    "retrying in 10 s ($attempt/5)" >&2
  sleep 10
done
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get "${apt_opts[@]}" install -y --no-install-recommends prometheus

# The package enables prometheus.service; the tests run their own, so none may linger.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-enabled --quiet prometheus 2>/dev/null \
    || systemctl is-active --quiet prometheus 2>/dev/null; then
    "${as_root[@]}" systemctl disable --now prometheus >&2 \
      || echo "install-prometheus: could not disable prometheus.service; stop it yourself" >&2
  fi
fi

command -v promtool >/dev/null 2>&1 || { echo "install-prometheus: promtool missing after install" >&2; exit 1; }
command -v prometheus >/dev/null 2>&1 || { echo "install-prometheus: prometheus missing after install" >&2; exit 1; }
echo "install-prometheus: $(prometheus --version 2>&1 | head -n 1)" >&2
