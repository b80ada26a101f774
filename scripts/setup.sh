#!/usr/bin/env bash
# Installs what Kiln needs on a Debian/Ubuntu machine with Node 20, idempotently:
# Debian packages (only the missing ones), npm packages (only when the lock file changed),
# and the TypeScript build (incremental). `npm start`, `npm test` and `npm run bench` call it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The code-interpreter template's kernels: the local runtime's sandboxes see the host's /usr read-only.
INTERPRETER_PACKAGES=(python3-ipykernel python3-jupyter-client python3-matplotlib python3-pandas python3-numpy)
PACKAGES=(redis-server bubblewrap slirp4netns iproute2 python3 util-linux e2fsprogs curl libnfs-utils systemd git python3-pip python3-venv openssl linux-libc-dev tmux "${INTERPRETER_PACKAGES[@]}" ${KILN_EXTRA_PACKAGES:-})
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Podman (the docker runtime's tests run against a real Podman API service) and what the
# offline image build needs; idempotent, a no-op when everything is installed.
# KILN_SKIP_PODMAN=1 leaves it out (the docker-platform tests then skip and say why); `npm start`
# sets it unless told otherwise, because the default local runtime needs no container engine.
if [ "${KILN_SKIP_PODMAN:-}" != "1" ]; then
  bash scripts/podman/install.sh >/dev/null
  # The tests also drive Kiln with Debian's AWS CLI (v2), as a user moving from AWS would, and
  # the web console in Debian's Chromium (playwright-core drives /usr/bin/chromium; no download).
  TEST_PACKAGES=(awscli chromium)
  test_missing=()
  for p in "${TEST_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || test_missing+=("$p")
  done
  if [ ${#test_missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${test_missing[*]} (tests)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${test_missing[@]}" >/dev/null
  fi
fi

stamp=node_modules/.kiln-lock-hash
hash=$(cat package.json */package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  echo "setup: installing npm packages"
  # npm install, not npm ci: ci rejects lock files that lack other platforms' optional
  # packages (buf, rollup), which this registry setup leaves out; install honours the lock.
  npm install --no-audit --no-fund --loglevel=error
  hash=$(cat package.json */package.json package-lock.json | sha256sum | cut -d' ' -f1)
  echo "$hash" > "$stamp"
fi

npx --no-install tsc -b

# `kiln` (the CLI, node_modules/.bin/kiln): npm links a workspace's bin only when its target exists,
# and on a fresh clone npm install runs before tsc has written control-plane/dist/cli.js.
if [ ! -e node_modules/.bin/kiln ]; then
  npm rebuild @kiln/control-plane --ignore-scripts --loglevel=error >/dev/null
fi
# tsc writes a new file without the execute bit (a fresh worktree's build, a deleted dist/).
chmod +x control-plane/dist/cli.js

# The web console (console/, served at /): built by Vite when its sources changed since the last build.
console_hash=$(cat console/package.json console/index.html console/vite.config.ts package-lock.json $(find console/src -type f | sort) | sha256sum | cut -d' ' -f1)
if [ ! -f console/dist/.build-hash ] || [ "$(cat console/dist/.build-hash)" != "$console_hash" ]; then
  echo "setup: building the web console"
  npm run build -w console --silent >/dev/null
  echo "$console_hash" > console/dist/.build-hash
fi
