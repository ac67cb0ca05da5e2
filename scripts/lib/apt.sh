# Shared by the install-*.sh scripts: install Debian packages, as root or with
# passwordless sudo, without starting their services. Source it, then call
#   apt_install NAME SERVICE PACKAGE...
# NAME prefixes every message; SERVICE (or "-") is a systemd unit the packages enable that
# must not linger (the tests and benchmarks start their own instances).
#
# It never waits on a password prompt (`sudo -n`: it says so and returns 1). While
# installing, a temporary policy-rc.d (exit 101) tells invoke-rc.d not to start services,
# unless the machine already has its own policy. Other installers may hold the dpkg lock
# for a moment: DPkg::Lock::Timeout covers `install`; `update` (the apt lists lock, not
# covered by apt 2.6's option) is retried.

apt_install() {
  local name="$1" service="$2"
  shift 2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$name: apt-get not found; install $* yourself" >&2
    return 1
  fi
  local as_root=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "$name: need root (or passwordless sudo) to apt-get install $*; or install them yourself" >&2
      return 1
    fi
    if ! sudo -n true 2>/dev/null; then
      echo "$name: need root or passwordless sudo, and sudo would ask for a password;" \
        "run as root, allow passwordless sudo, or install $* yourself (sudo apt-get install $*)" >&2
      return 1
    fi
    as_root=(sudo -n)
  fi
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e "$policy" ]]; then
    "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    made_policy=1
  fi
  local apt_opts=(-o DPkg::Lock::Timeout=300 -q) attempt status=0
  echo "$name: apt-get install $*" >&2
  for attempt in 1 2 3 4 5 6; do
    if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >/dev/null; then
      break
    fi
    if [[ "$attempt" -eq 6 ]]; then
      echo "$name: apt-get update kept failing" >&2
      status=1
      break
    fi
    echo "$name: apt-get update failed (apt lists locked by another apt?); retrying in 10 s ($attempt/5)" >&2
    sleep 10
  done
  if [[ "$status" -eq 0 ]]; then
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get "${apt_opts[@]}" install -y --no-install-recommends "$@" >/dev/null || status=1
  fi
  if [[ "$made_policy" -eq 1 ]]; then
    "${as_root[@]}" rm -f "$policy"
  fi
  if [[ "$status" -eq 0 && "$service" != "-" && -d /run/systemd/system ]] \
    && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet "$service" 2>/dev/null \
      || systemctl is-active --quiet "$service" 2>/dev/null; then
      "${as_root[@]}" systemctl disable --now "$service" >&2 \
        || echo "$name: could not disable $service; stop it yourself" >&2
    fi
  fi
  return "$status"
}
