#!/usr/bin/env bash
# Install the external programs the test-suite drives for real. Idempotent:
# each installer returns at once when its tool is already present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for installer in "$here"/install-*.sh; do
  [[ "$installer" == "$here/install-tools.sh" ]] && continue
  bash "$installer"
done
