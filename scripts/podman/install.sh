#!/usr/bin/env bash
# Idempotently install what Kiln needs to run executors under Podman and to
# build its images offline: podman (+ runc, which works on this host's hybrid
# cgroups where crun does not), rootless helpers, and debootstrap.
#
#   bash scripts/podman/install.sh          # install whatever is missing
#   bash scripts/podman/install.sh --check  # exit 1 if something is missing
#
# Only calls apt-get when a package is actually missing (checked with dpkg -s).
set -euo pipefail

PKGS=(
  podman        # engine + `podman system service` (Docker-compatible API)
  runc          # OCI runtime (crun fails here on hybrid cgroup v1/v2)
  uidmap        # newuidmap/newgidmap (rootless podman, userns=auto)
  slirp4netns   # rootless networking
  netavark      # podman 4 network backend (bridge networks)
  iptables      # netavark programs bridge NAT/port forwarding with iptables
  aardvark-dns  # netavark DNS
  debootstrap   # offline image build: Debian rootfs without a registry
  curl          # /_ping checks against the API socket
  ca-certificates
  bubblewrap    # lets the host run the same sandbox checks as the images
)

# Podman's --userns=auto (HostConfig.UsernsMode "auto": a private host uid
# range per container) allocates from the "containers" entries of
# /etc/subuid and /etc/subgid. Kiln recommends it (images/README.md).
ensure_subids() {
  local f
  for f in /etc/subuid /etc/subgid; do
    if ! grep -q '^containers:' "$f" 2>/dev/null; then
      if [[ "${1:-}" == "--check" ]]; then echo "podman install: no containers: entry in $f" >&2; return 1; fi
      echo "containers:2147483647:2147483648" >>"$f"
      echo "podman install: added containers:2147483647:2147483648 to $f (for userns=auto)"
    fi
  done
  return 0
}

missing=()
for p in "${PKGS[@]}"; do
  # dpkg -s exits 0 also for "deinstall ok config-files"; check the status line.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "podman install: all packages present (${PKGS[*]})"
  if [[ $(id -u) -eq 0 || "${1:-}" == "--check" ]]; then ensure_subids "${1:-}"; fi
  exit 0
fi

if [[ "${1:-}" == "--check" ]]; then
  echo "podman install: missing: ${missing[*]}" >&2
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi

echo "podman install: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Some packages (e.g. aardvark-dns) may be unavailable on older releases:
# install the ones apt knows about, and only fail on the core ones.
"${SUDO[@]}" apt-get update -qq
installable=()
for p in "${missing[@]}"; do
  if apt-cache show "$p" >/dev/null 2>&1; then installable+=("$p"); else echo "podman install: skipping unavailable package $p" >&2; fi
done
if [[ ${#installable[@]} -gt 0 ]]; then
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${installable[@]}"
fi
for core in podman runc debootstrap; do
  dpkg-query -W -f='${Status}' "$core" 2>/dev/null | grep -q '^install ok installed$' \
    || { echo "podman install: failed to install $core" >&2; exit 1; }
done
if [[ $(id -u) -eq 0 ]]; then ensure_subids; fi
podman --version
runc --version | head -1
