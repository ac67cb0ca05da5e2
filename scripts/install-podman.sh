#!/usr/bin/env bash
# Install what builds and runs the container image without a daemon or a registry:
# Debian's podman, runc and mmdebstrap. Then build the local base image
# (scripts/image-base.sh) and check that podman can run a container here, with the flags
# tests/test_image.py uses, and record the verdict for the tests.
#
# The verdict goes to .venv/podman-status (PODMAN_STATUS_FILE overrides it):
#   ok                    podman runs containers: the image tests must pass
#   unavailable: REASON   podman is installed but cannot run a container on this machine
#                         (no user namespaces, no cgroups, a locked-down sandbox...): the
#                         image tests skip with REASON, unless GATEWAY_PROXY_IMAGE_TEST=required
# A failed install (no apt-get, no root) exits 1, as the other install scripts do.
#
# Idempotent and instant when the programs, the base image and an "ok" verdict are there.
# Runs as root in CI; as a normal user it needs passwordless sudo for apt-get (`sudo -n`).
set -euo pipefail
source "${BASH_SOURCE[0]%/*}/lib/apt.sh"

here="$(cd "$(dirname "$0")" && pwd)"
status_file="${PODMAN_STATUS_FILE:-$here/../.venv/podman-status}"
base_image="${GATEWAY_PROXY_BASE_IMAGE:-localhost/gateway-proxy-base:bookworm}"
programs=(podman runc mmdebstrap)

have_programs() {
  local program
  for program in "${programs[@]}"; do
    command -v "$program" >/dev/null 2>&1 || return 1
  done
}

if have_programs && [[ "$(head -n 1 "$status_file" 2>/dev/null)" == "ok" ]] \
  && podman image exists "$base_image" 2>/dev/null; then
  exit 0
fi

if ! have_programs; then
  apt_install install-podman - "${programs[@]}" || exit 1
  have_programs || { echo "install-podman: ${programs[*]} missing after install" >&2; exit 1; }
fi

mkdir -p "$(dirname "$status_file")"
verdict() {
  printf '%s\n' "$1" >"$status_file.new" && mv -f "$status_file.new" "$status_file"
  echo "install-podman: $1" >&2
}

if ! output="$(bash "$here/image-base.sh" 2>&1)"; then
  verdict "unavailable: building the local base image failed: $(tail -n 3 <<<"$output" | tr '\n' ' ')"
  exit 0
fi

# The flags of tests/test_image.py: read-only, a tmpfs /tmp, uid 10001, the host's network
# (no CNI bridge needed) and limits no higher than this machine's hard limit.
hard="$(ulimit -Hn)"
if output="$(podman run --rm --runtime runc --network host --read-only --tmpfs /tmp \
  --user 10001 --ulimit "nofile=$hard:$hard" --ulimit nproc=4096:4096 \
  "$base_image" python3 -c 'import os; print(os.getuid())' 2>&1)" && [[ "$output" == *10001 ]]; then
  verdict "ok"
else
  verdict "unavailable: podman run failed here: $(tail -n 3 <<<"$output" | tr '\n' ' ')"
fi
