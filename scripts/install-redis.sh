#!/usr/bin/env bash
# Install Debian's `redis-server` package (/usr/bin/redis-server, redis-cli). Tests start
# their own redis-server on a free loopback port, in a temp dir, with no persistence
# (tests/redis_server.py): the flow control tests, to prove that a rate limit with
# `store: redis://` is shared by several processes and that an unreachable store never
# hangs a request; the message ledger's tests, to prove the Redis ledger's atomicity
# across clients and processes.
#
# Idempotent and instant when redis-server is already on PATH. Runs as root in CI; as a
# normal user it needs passwordless sudo (scripts/lib/apt.sh: it never waits on a password
# prompt). The packaged redis-server service is neither started nor left enabled.
set -euo pipefail
source "${BASH_SOURCE[0]%/*}/lib/apt.sh"

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
apt_install install-redis redis-server redis-server || exit 1

command -v redis-server >/dev/null 2>&1 || { echo "install-redis: redis-server missing after install" >&2; exit 1; }
echo "install-redis: $(redis-server --version 2>&1 | head -n 1)" >&2
