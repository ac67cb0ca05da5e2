#!/usr/bin/env bash
# Install Debian's `prometheus` package, which provides /usr/bin/prometheus and
# /usr/bin/promtool. The observability tests drive both for real.
#
# Idempotent and instant when both programs are already on PATH. Runs as root in CI;
# as a normal user it needs passwordless sudo (scripts/lib/apt.sh: it never waits on a
# password prompt). The packaged prometheus service is neither started nor left enabled:
# the tests start their own Prometheus on a free loopback port.
set -euo pipefail
source "${BASH_SOURCE[0]%/*}/lib/apt.sh"

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
apt_install install-prometheus prometheus prometheus || exit 1

command -v promtool >/dev/null 2>&1 || { echo "install-prometheus: promtool missing after install" >&2; exit 1; }
command -v prometheus >/dev/null 2>&1 || { echo "install-prometheus: prometheus missing after install" >&2; exit 1; }
echo "install-prometheus: $(prometheus --version 2>&1 | head -n 1)" >&2
