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
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-podman: apt-get not found; install podman, runc and mmdebstrap yourself" >&2
    exit 1
  fi
  as_root=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! sudo -n true 2>/dev/null; then
      echo "install-podman: need root or passwordless sudo to apt-get install" \
        "podman runc mmdebstrap; or install them yourself" >&2
      exit 1
    fi
    as_root=(sudo -n)
  fi
  apt_opts=(-o DPkg::Lock::Timeout=300 -q)
  echo "install-podman: installing Debian's podman, runc and mmdebstrap" >&2
  # The lists are fresh when install-prometheus.sh just ran; update only if the install fails.
  if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "${programs[@]}"; then
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get "${apt_opts[@]}" install -y --no-install-recommends "${programs[@]}"
  fi
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
