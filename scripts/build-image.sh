#!/usr/bin/env bash
# Build the container image with podman: no daemon, and no registry when BASE_IMAGE=local.
#
#   scripts/build-image.sh [TAG]          # default tag localhost/gateway-proxy:<version>
#   BASE_IMAGE=local scripts/build-image.sh   # on the mmdebstrap base (scripts/image-base.sh)
#   BASE_IMAGE=registry.example.com/python:3.11-slim-bookworm scripts/build-image.sh
#
# Without BASE_IMAGE the Dockerfile's pinned docker.io/library/python base is used, which
# podman pulls from Docker Hub. `make image` and `make image-test` run this script.
#
# The build reaches PyPI the way this machine's pip does: the CA bundle pip trusts
# ($PIP_CERT, else pip's `cert` setting, else /etc/ssl/certs/ca-certificates.crt) is
# mounted read-only at the same path in the build and named by the PIP_CERT build
# argument, and an http(s) PIP_INDEX_URL (or pip's `index-url`) is passed on. Both are
# builder-stage arguments: nothing of them reaches the runtime image (tests/test_image.py
# checks its environment, history and CA bundle). Local find-links and file:// indexes of
# the host are not visible in the build and are left out.
#
# Layers are cached by podman: with only the code changed, a rebuild takes seconds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
version="$(sed -nE 's/^__version__ = "([^"]+)"/\1/p' "$root/proxy/__init__.py")"
tag="${1:-localhost/gateway-proxy:${version}}"

command -v podman >/dev/null 2>&1 \
  || { echo "build-image: podman not found: run scripts/install-podman.sh" >&2; exit 1; }

args=(--runtime runc --network host --format docker --tag "$tag"
      --build-arg "VERSION=$version")
if revision="$(git -C "$root" rev-parse HEAD 2>/dev/null)"; then
  args+=(--build-arg "REVISION=$revision")
fi
if [[ -n "${CREATED:-}" ]]; then
  args+=(--build-arg "CREATED=$CREATED")
fi

base="${BASE_IMAGE:-}"
if [[ "$base" == "local" ]]; then
  bash "$here/image-base.sh"
  base="${GATEWAY_PROXY_BASE_IMAGE:-localhost/gateway-proxy-base:bookworm}"
fi
if [[ -n "$base" ]]; then
  args+=(--build-arg "BASE_IMAGE=$base")
fi

pip_setting() {
  local pip
  pip="$(command -v pip3 || command -v pip || true)"
  [[ -n "$pip" ]] && "$pip" config get "$1" 2>/dev/null | head -n 1 || true
}
ca="${PIP_CERT:-$(pip_setting global.cert)}"
ca="${ca:-/etc/ssl/certs/ca-certificates.crt}"
if [[ -f "$ca" ]]; then
  args+=(--volume "$ca:$ca:ro" --build-arg "PIP_CERT=$ca")
fi
index="${PIP_INDEX_URL:-$(pip_setting global.index-url)}"
if [[ "$index" == http://* || "$index" == https://* ]]; then
  args+=(--build-arg "PIP_INDEX_URL=$index")
fi

echo "build-image: podman build ${base:+on $base }-> $tag" >&2
previous="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
podman build "${args[@]}" "$root"
# The tag moved on: drop the image it left behind (its venv layer is the big one), unless
# a container still uses it. The builder stage's images stay: they are the layer cache.
current="$(podman image inspect --format '{{.Id}}' "$tag")"
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
