#!/usr/bin/env bash
# Pin the dependency tree: resolve the project and its test extra afresh, in a throw-away
# venv, and write every installed distribution at its exact version (`make lock`).
#
#   bash scripts/lock.sh [OUT]     OUT defaults to requirements/constraints.txt
#
# `make install` installs with `-c requirements/constraints.txt`, so CI and every
# developer get these versions; `make audit` checks them for known vulnerabilities. Run it
# after changing dependencies in pyproject.toml, or to take new releases on purpose, then
# `make install test` and commit the file with the change that needs it. Needs python3 >=
# 3.11 with venv (PYTHON=... picks another) and PyPI.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/requirements/constraints.txt}"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet -e "$root[test]"

{
  cat <<'HEADER'
# The pinned dependency tree of gateway-proxy and its test extra: every distribution that
# `pip install -e '.[test]'` installs, at one exact version (the project itself excluded).
# `make install` installs with `-c requirements/constraints.txt`; `make audit` runs
# pip-audit on these pins. Do not edit by hand. Regenerate after changing dependencies in
# pyproject.toml, or to take new releases on purpose:
#   make lock        # = bash scripts/lock.sh: resolves '.[test]' afresh in a temporary venv
# then run `make install test` and commit this file with the change that needs it.
HEADER
  "$work/venv/bin/python" -m pip freeze --exclude-editable
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(grep -cv '^#' "$out") pins)"
