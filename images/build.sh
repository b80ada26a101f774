#!/usr/bin/env bash
# Build Kiln's container images: the executor base image and one image per
# template in templates/*.json (tagged with that file's "image" field).
#
#   bash images/build.sh [options]
#
# Options:
#   --offline            build without any registry: Debian rootfs from
#                        debootstrap (cached) + the host's Node 20 binary
#   --online             FROM the public bases (node:20-bookworm-slim); fail if
#                        they can't be pulled
#                        (default: online if the public base is present or can
#                        be pulled within KILN_PULL_TIMEOUT seconds, else offline)
#   --builder B          docker or podman (default: $KILN_IMAGE_BUILDER, else
#                        podman if installed, else docker)
#   --only LIST          comma-separated: "executor" and/or template names
#                        (templates always build on the current executor image)
#   --skip-npm-build     don't run `npm run build` first
#   --force              rebuild even if the staged context is unchanged
#   --refresh            rebuild the cached Debian rootfs and apt lists
#   --no-smoke           skip the smoke test of each built image
#   -h, --help
#
# Environment:
#   KILN_IMAGE_BUILDER       docker | podman
#   KILN_CACHE_DIR           cache (default: <repo>/.kiln/cache/images)
#   KILN_EXECUTOR_IMAGE      executor tag (default: localhost/kiln/executor:<executor/package.json version>)
#   KILN_PUBLIC_BASE_IMAGE   production base (default: docker.io/library/node:20-bookworm-slim)
#   KILN_PULL_TIMEOUT        seconds for the auto-mode pull attempt (default: 45)
#   KILN_DEBIAN_MIRROR       (default: http://deb.debian.org/debian)
#   KILN_DEBIAN_SECURITY_MIRROR (default: http://deb.debian.org/debian-security)
#   KILN_NODE_BINARY         Node 20 binary copied into the offline base (default: `command -v node`)
#   CONTAINERS_CONF          podman only (default: <repo>/infra/podman/containers.conf)
#
# Idempotent: each image carries the label io.kiln.build-hash (hash of its
# staged build context + base image id + mode); an image whose label matches is
# not rebuilt. The offline Debian rootfs is cached as
# $KILN_CACHE_DIR/rootfs-bookworm.tar and only rebuilt when its inputs change.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES=$REPO/images
STAGE_JS=$IMAGES/lib/stage.mjs
CACHE=${KILN_CACHE_DIR:-$REPO/.kiln/cache/images}
SUITE=bookworm
MIRROR=${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${KILN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PUBLIC_BASE=${KILN_PUBLIC_BASE_IMAGE:-docker.io/library/node:20-bookworm-slim}
PULL_TIMEOUT=${KILN_PULL_TIMEOUT:-45}
# Bump to invalidate every cached rootfs/base image built by older versions of this script.
OFFLINE_RECIPE_VERSION=1

MODE=auto
BUILDER=${KILN_IMAGE_BUILDER:-}
NPM_BUILD=1
ONLY=""
FORCE=0
REFRESH=0
SMOKE=1

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
log() { echo "build: $*" >&2; }
die() { echo "build: error: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --offline) MODE=offline ;;
    --online) MODE=online ;;
    --builder) BUILDER=${2:?--builder needs a value}; shift ;;
    --builder=*) BUILDER=${1#*=} ;;
    --only) ONLY=${2:?--only needs a value}; shift ;;
    --only=*) ONLY=${1#*=} ;;
    --skip-npm-build) NPM_BUILD=0 ;;
    --force) FORCE=1 ;;
    --refresh) REFRESH=1 ;;
    --no-smoke) SMOKE=0 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

T0=$SECONDS
command -v node >/dev/null || die "node not found"

# ---------------------------------------------------------------- builder ---
if [[ -z "$BUILDER" ]]; then
  if command -v podman >/dev/null; then BUILDER=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then BUILDER=docker
  else die "neither podman nor a running docker found (bash scripts/podman/install.sh installs podman)"
  fi
fi
case "$BUILDER" in
  podman)
    command -v podman >/dev/null || die "podman not installed"
    # runc + cgroupfs etc.: the project's own containers.conf (never /etc/containers).
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO/infra/podman/containers.conf}
    ;;
  docker)
    docker info >/dev/null 2>&1 || die "docker daemon not reachable"
    ;;
  *) die "KILN_IMAGE_BUILDER/--builder must be docker or podman, not '$BUILDER'" ;;
esac
B() { "$BUILDER" "$@"; }
image_exists() { B image inspect "$1" >/dev/null 2>&1; }
image_id() { B image inspect --format '{{.Id}}' "$1"; }

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock -w 1800 9 || die "another images/build.sh holds $CACHE/build.lock"

# ------------------------------------------------------ what to build -------
EXECUTOR_VERSION=$(node "$STAGE_JS" version "$REPO/executor/package.json")
EXECUTOR_TAG=${KILN_EXECUTOR_IMAGE:-localhost/kiln/executor:$EXECUTOR_VERSION}

TEMPLATE_NAMES=()
declare -A TEMPLATE_IMAGE=() TEMPLATE_RUNTIMES=()
while IFS=$'\t' read -r name image file runtimes; do
  [[ -n "$name" ]] || continue
  TEMPLATE_NAMES+=("$name")
  TEMPLATE_IMAGE[$name]=$image
  TEMPLATE_RUNTIMES[$name]=${runtimes/#-/}
done < <(node "$STAGE_JS" templates "$REPO")
if [[ ${#TEMPLATE_NAMES[@]} -eq 0 ]]; then
  # Bootstrap fallback, until templates/*.json exist.
  log "warning: no templates/*.json found; assuming nodejs, python, shell, provided"
  for name in nodejs python shell provided; do
    TEMPLATE_NAMES+=("$name")
    TEMPLATE_IMAGE[$name]=localhost/kiln/template-$name:0.1.0
  done
fi

want() { # want NAME: is NAME selected by --only?
  [[ -z "$ONLY" ]] && return 0
  [[ ",$ONLY," == *",$1,"* ]]
}
if [[ -n "$ONLY" ]]; then
  IFS=',' read -r -a only_list <<<"$ONLY"
  for n in "${only_list[@]}"; do
    [[ "$n" == executor || -n "${TEMPLATE_IMAGE[$n]:-}" ]] || die "--only: unknown image '$n' (executor or one of: ${TEMPLATE_NAMES[*]})"
  done
fi
SELECTED_TEMPLATES=()
for name in "${TEMPLATE_NAMES[@]}"; do
  want "$name" || continue
  [[ -f "$IMAGES/templates/$name/Containerfile" ]] \
    || die "templates/$name.json has no images/templates/$name/Containerfile (add one, or use --only)"
  SELECTED_TEMPLATES+=("$name")
done

# ------------------------------------------------------------ npm build -----
if [[ $NPM_BUILD -eq 1 ]]; then
  log "npm run build"
  (cd "$REPO" && npm run build --silent) >&2 || die "npm run build failed (fix it, or --skip-npm-build to use the current dist/)"
fi
[[ -f "$REPO/executor/dist/main.js" ]] || die "executor/dist/main.js missing: build the project first (npm run build)"

# ------------------------------------------------------------------ mode ----
if [[ "$MODE" == auto ]]; then
  if image_exists "$PUBLIC_BASE"; then
    MODE=online
  else
    log "trying to pull $PUBLIC_BASE (up to ${PULL_TIMEOUT}s; --offline skips this)"
    if timeout "$PULL_TIMEOUT" "$BUILDER" pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
      MODE=online
    else
      log "cannot pull $PUBLIC_BASE: building offline"
      MODE=offline
    fi
  fi
elif [[ "$MODE" == online ]] && ! image_exists "$PUBLIC_BASE"; then
  B pull "$PUBLIC_BASE" >&2 || die "cannot pull $PUBLIC_BASE (try --offline)"
fi

sha() { sha256sum | cut -c1-64; }
pkg_list() { sed -e 's/#.*//' "$1" | tr -s ' \t\n' ' ' | sed -e 's/^ //' -e 's/ $//'; }

# --------------------------------------------------------- offline base -----
ROOTFS_DIR=$CACHE/rootfs-$SUITE          # also the apt "resolver" chroot
ROOTFS_TAR=$CACHE/rootfs-$SUITE.tar
ROOTFS_KEYFILE=$CACHE/rootfs-$SUITE.key
EXECUTOR_PKGS=$(pkg_list "$IMAGES/executor/packages.txt")

chroot_mounts=()
cleanup_mounts() {
  local m
  for m in "${chroot_mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done
  chroot_mounts=()
}
trap cleanup_mounts EXIT

chroot_prepare() { # chroot_prepare ROOT: mount /proc, copy the host's DNS config (call in this shell, not in $(...))
  local root=$1
  if ! mountpoint -q "$root/proc"; then
    mount -t proc proc "$root/proc"
    chroot_mounts+=("$root/proc")
  fi
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}
in_chroot() { # in_chroot ROOT CMD...
  local root=$1; shift
  DEBIAN_FRONTEND=noninteractive LC_ALL=C chroot "$root" "$@"
}
rm_tree() { # rm -rf that never follows into a mounted /proc
  [[ -e "$1" ]] || return 0
  umount -l "$1/proc" 2>/dev/null || true
  rm -rf --one-file-system "$1"
}

write_sources() { # apt sources incl. updates + security (debootstrap only writes "bookworm main")
  rm -f "$1/etc/apt/sources.list"
  mkdir -p "$1/etc/apt/sources.list.d"
  cat >"$1/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

ensure_rootfs() {
  ROOTFS_KEY=$(printf '%s\n' "recipe=$OFFLINE_RECIPE_VERSION" "suite=$SUITE" "variant=minbase" \
    "mirror=$MIRROR" "security=$SECURITY_MIRROR" "include=$EXECUTOR_PKGS" | sha)
  if [[ $REFRESH -eq 0 && -f "$ROOTFS_TAR" && -d "$ROOTFS_DIR" && "$(cat "$ROOTFS_KEYFILE" 2>/dev/null)" == "$ROOTFS_KEY" ]]; then
    log "rootfs: cached $ROOTFS_TAR"
    return
  fi
  [[ $EUID -eq 0 ]] || die "the offline path needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null || die "debootstrap not installed (bash scripts/podman/install.sh)"
  local new=$CACHE/rootfs-$SUITE.new t=$SECONDS
  cleanup_mounts
  rm_tree "$new"
  log "rootfs: debootstrap --variant=minbase --include=${EXECUTOR_PKGS// /,} $SUITE + upgrade (about 1 min)"
  debootstrap --variant=minbase --include="${EXECUTOR_PKGS// /,}" "$SUITE" "$new" "$MIRROR" \
    >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  write_sources "$new"
  # Like debian:bookworm-slim: no docs/man/locales now or in later dpkg installs.
  mkdir -p "$new/etc/dpkg/dpkg.cfg.d"
  cat >"$new/etc/dpkg/dpkg.cfg.d/kiln-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  find "$new/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$new/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$new"/usr/share/{man,groff,info,lintian,linda,locale}/*
  # Security and point-release updates on top of what debootstrap installed.
  chroot_prepare "$new"
  { in_chroot "$new" apt-get -qq update &&
    in_chroot "$new" apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade &&
    in_chroot "$new" apt-get -qq clean; } >>"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 30 "$CACHE/debootstrap.log" >&2; die "apt-get upgrade in the new rootfs failed (log: $CACHE/debootstrap.log)"; }
  cleanup_mounts
  # Host-specific files that a container runtime provides itself.
  rm -f "$new/etc/resolv.conf" "$new/etc/hostname"
  : >"$new/etc/hostname"
  rm -rf "$new"/var/lib/apt/lists/* "$new"/var/cache/apt/*.bin "$new"/var/log/*.log "$new/var/log/apt"/* \
    "$new/var/cache/debconf"/*-old "$new/var/lib/dpkg"/*-old
  tar --numeric-owner --sort=name --xattrs --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    --exclude='./var/cache/kiln-debs' -C "$new" -cf "$ROOTFS_TAR.new" .
  rm_tree "$ROOTFS_DIR"
  mv "$new" "$ROOTFS_DIR"
  mv "$ROOTFS_TAR.new" "$ROOTFS_TAR"
  sha256sum "$ROOTFS_TAR" | cut -c1-64 >"$ROOTFS_TAR.sha256"
  echo "$ROOTFS_KEY" >"$ROOTFS_KEYFILE"
  log "rootfs: built $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1)) in $((SECONDS - t))s"
}

ensure_offline_base() {
  ensure_rootfs
  local node_bin node_major node_sha
  node_bin=$(readlink -f "${KILN_NODE_BINARY:-$(command -v node)}")
  node_major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
  [[ "$node_major" == 20 ]] || die "offline base needs a Node 20 binary; $node_bin is $("$node_bin" --version) (set KILN_NODE_BINARY)"
  # The binary must only need libraries that Debian bookworm has (glibc etc.).
  node_sha=$(sha256sum "$node_bin" | cut -c1-64)
  # Tagged by the tar's content, so a --refresh'ed rootfs becomes a new image.
  [[ -s "$ROOTFS_TAR.sha256" ]] || sha256sum "$ROOTFS_TAR" | cut -c1-64 >"$ROOTFS_TAR.sha256"
  local rootfs_sha
  rootfs_sha=$(<"$ROOTFS_TAR.sha256")
  ROOTFS_IMAGE=localhost/kiln/rootfs-$SUITE:${rootfs_sha:0:12}
  if ! image_exists "$ROOTFS_IMAGE"; then
    log "import $ROOTFS_TAR as $ROOTFS_IMAGE"
    B import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["bash"]' \
      "$ROOTFS_TAR" "$ROOTFS_IMAGE" >"$CACHE/import.log" 2>&1 \
      || { cat "$CACHE/import.log" >&2; die "importing $ROOTFS_TAR failed"; }
  fi
  BASE_IMAGE=localhost/kiln/base-$SUITE-node20:$(printf '%s\n' "$rootfs_sha" "$node_sha" | sha | cut -c1-12)
  if ! image_exists "$BASE_IMAGE"; then
    local ctx=$CACHE/stage/base
    rm -rf "$ctx"; mkdir -p "$ctx"
    cp "$node_bin" "$ctx/node"
    cat >"$ctx/Containerfile" <<EOF
# Offline stand-in for $PUBLIC_BASE: Debian $SUITE (debootstrap) + the host's Node.js binary.
FROM $ROOTFS_IMAGE
COPY node /usr/local/bin/node
RUN node --version
EOF
    log "build $BASE_IMAGE (node $("$node_bin" --version) from $node_bin)"
    B build -q -f "$ctx/Containerfile" -t "$BASE_IMAGE" "$ctx" >/dev/null
  fi
}

# apt lists in the resolver chroot, refreshed daily (or with --refresh).
ensure_resolver_lists() {
  local stamp=$ROOTFS_DIR/var/lib/apt/lists/.kiln-updated
  if [[ $REFRESH -eq 1 || ! -f "$stamp" || -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]]; then
    log "resolver: apt-get update"
    chroot_prepare "$ROOTFS_DIR"
    in_chroot "$ROOTFS_DIR" apt-get -qq update >&2
    touch "$stamp"
  fi
}

# resolve_debs OUTDIR PKG...: put into OUTDIR the .deb files that installing
# PKG... on top of the offline executor base needs. Resolved with apt in the
# rootfs chroot (same dpkg state as the base image); the result is cached per
# (rootfs, apt lists, package list) under $CACHE/debs/, so unchanged builds
# neither run apt nor touch the network.
resolve_debs() {
  local out=$1; shift
  [[ $# -gt 0 ]] || return 0
  ensure_resolver_lists
  local stamp=$ROOTFS_DIR/var/lib/apt/lists/.kiln-updated key cdir
  key=$(printf '%s\n' "$ROOTFS_KEY" "$(stat -c %Y "$stamp")" "$*" | sha)
  cdir=$CACHE/debs/${key:0:16}
  if [[ ! -f "$cdir/.complete" ]]; then
    log "resolver: apt resolves $*"
    local arch_dir=/var/cache/kiln-debs sim lines name version arch file missing=0
    mkdir -p "$ROOTFS_DIR$arch_dir/partial"
    local apt_opts=(-y -qq --no-install-recommends -o "Dir::Cache::archives=$arch_dir")
    chroot_prepare "$ROOTFS_DIR"
    sim=$(in_chroot "$ROOTFS_DIR" apt-get -s "${apt_opts[@]}" install "$@") || die "apt cannot resolve: $*"
    # "Inst NAME (VERSION RELEASE [ARCH])" or, for upgrades, "Inst NAME [OLD] (VERSION ...)"
    lines=$(sed -En 's/^Inst ([^ ]+) (\[[^]]*\] )?\(([^ ]+) .*\[([^]]+)\]\)$/\1 \3 \4/p' <<<"$sim")
    rm -rf "$cdir.new"; mkdir -p "$cdir.new"
    if [[ -n "$lines" ]]; then
      in_chroot "$ROOTFS_DIR" apt-get "${apt_opts[@]}" --download-only install "$@" >&2 \
        || die "apt-get --download-only failed for: $*"
      while read -r name version arch; do
        file="${name}_${version//:/%3a}_${arch}.deb"
        if [[ -f "$ROOTFS_DIR$arch_dir/$file" ]]; then
          cp "$ROOTFS_DIR$arch_dir/$file" "$cdir.new/"
        else
          log "resolver: expected $file not downloaded"; missing=1
        fi
      done <<<"$lines"
    fi
    cleanup_mounts
    [[ $missing -eq 0 ]] || die "could not collect the .deb files for: $*"
    touch "$cdir.new/.complete"
    rm -rf "$cdir"; mv "$cdir.new" "$cdir"
    # Forget resolutions unused for two weeks.
    find "$CACHE/debs" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} + 2>/dev/null || true
  fi
  touch "$cdir"
  find "$cdir" -maxdepth 1 -name '*.deb' -exec cp {} "$out/" \;
}

# ------------------------------------------------------------- building ----
SUMMARY=()

# build_image NAME TAG CONTEXT KIND [extra build args...]
# Skips the build when TAG exists with the same io.kiln.build-hash label.
# Sets BUILT_ID to TAG's image id.
build_image() {
  local name=$1 tag=$2 ctx=$3 kind=$4; shift 4
  local base_id=${BASE_ID:-} hash info
  [[ -n "$base_id" ]] || base_id=$(image_id "$BASE_FOR_BUILD")
  hash=$(node "$STAGE_JS" hash "$ctx" "builder=$BUILDER" "mode=$MODE" "base=$base_id" "tag=$tag")
  info=$(B image inspect --format '{{.Id}} {{ index .Config.Labels "io.kiln.build-hash" }}' "$tag" 2>/dev/null || true)
  if [[ $FORCE -eq 0 && -n "$info" && "${info#* }" == "$hash" ]]; then
    BUILT_ID=${info%% *}
    SUMMARY+=("$(printf '%-10s %-46s %s  unchanged' "$name" "$tag" "$(sed 's/^sha256://' <<<"$BUILT_ID" | cut -c1-12)")")
    return
  fi
  local t=$SECONDS
  log "build $tag (FROM $BASE_FOR_BUILD)"
  B build \
    -f "$ctx/Containerfile" \
    -t "$tag" \
    --build-arg "BASE_IMAGE=$BASE_FOR_BUILD" \
    --label "io.kiln.build-hash=$hash" \
    --label "io.kiln.image=$name" \
    --label "io.kiln.kind=$kind" \
    --label "io.kiln.build-mode=$MODE" \
    --label "io.kiln.base-image=$BASE_FOR_BUILD" \
    --label "org.opencontainers.image.version=$EXECUTOR_VERSION" \
    "$@" "$ctx" >"$CACHE/build-$name.log" 2>&1 \
    || { tail -n 40 "$CACHE/build-$name.log" >&2; die "building $tag failed (log: $CACHE/build-$name.log)"; }
  if [[ $SMOKE -eq 1 ]]; then smoke "$name" "$tag"; fi
  BUILT_ID=$(image_id "$tag")
  SUMMARY+=("$(printf '%-10s %-46s %s  built in %ss' "$name" "$tag" "$(sed 's/^sha256://' <<<"$BUILT_ID" | cut -c1-12)" "$((SECONDS - t))")")
}

# Smoke test: tools present, declared packages installed, native addons load
# against the image's libc, every runtime the template declares has its
# interpreter where the executor starts it, and the non-root user can start a
# bubblewrap sandbox with the documented container options (images/README.md).
smoke() {
  local name=$1 tag=$2 runtimes=${TEMPLATE_RUNTIMES[$1]:-}
  local script='set -e
for rt in $(echo "$KILN_RUNTIMES_CHECK" | tr "," " "); do
  case "$rt" in
    nodejs*.x) want=${rt#nodejs}; want=${want%.x}
      [ "$(/usr/bin/node -p "process.versions.node.split(\".\")[0]")" = "$want" ] || { echo "runtime $rt: /usr/bin/node is not Node $want" >&2; exit 1; } ;;
    python3.*) want=${rt#python}
      [ "$(/usr/bin/python3 -c "import sys; print(\"%d.%d\" % sys.version_info[:2])" 2>/dev/null)" = "$want" ] || { echo "runtime $rt: /usr/bin/python3 is not Python $want" >&2; exit 1; } ;;
    provided*) test -x /usr/bin/node && test -x /bin/sh || { echo "runtime $rt: needs /usr/bin/node (runner) and /bin/sh" >&2; exit 1; } ;;
    *) echo "warning: no smoke check for runtime $rt" >&2 ;;
  esac
done
[ "$(id -u)" = 1000 ] && [ "$(id -un)" = kiln ]
node -e "if (process.versions.node.split(\".\")[0] !== \"20\") process.exit(1)"
command -v bwrap prlimit tini >/dev/null
test -f /opt/kiln/executor/dist/main.js
for f in /usr/local/share/kiln/packages/*.txt; do
  for p in $(sed -e "s/#.*//" "$f"); do
    dpkg-query -W -f="\${Status}" "$p" 2>/dev/null | grep -q "ok installed" || { echo "missing package $p" >&2; exit 1; }
  done
done
find /opt/kiln -name "*.node" -type f ! -name "*musl*" | while read -r f; do
  node -e "process.dlopen({ exports: {} }, process.argv[1])" "$f" || { echo "native addon $f does not load" >&2; exit 1; }
done
bwrap --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin \
  --proc /proc --dev /dev --tmpfs /tmp --unshare-all --hostname sandbox --die-with-parent --new-session \
  --uid 1000 --gid 1000 --cap-drop ALL -- /usr/bin/node -e "process.exit(0)"'
  if ! B run --rm --network none --user kiln --cap-drop ALL \
      --security-opt no-new-privileges --security-opt systempaths=unconfined \
      --security-opt "seccomp=$REPO/infra/podman/seccomp.json" \
      -e "KILN_RUNTIMES_CHECK=$runtimes" \
      --entrypoint /bin/sh "$tag" -c "$script" >"$CACHE/smoke-$name.log" 2>&1; then
    cat "$CACHE/smoke-$name.log" >&2
    die "smoke test of $tag failed"
  fi
}

STAGE=$CACHE/stage
mkdir -p "$STAGE"

if [[ "$MODE" == offline ]]; then
  ensure_offline_base
else
  BASE_IMAGE=$PUBLIC_BASE
fi

# Executor image (also the base of every template image).
if want executor || [[ ${#SELECTED_TEMPLATES[@]} -gt 0 ]]; then
  ctx=$STAGE/executor
  rm -rf "$ctx"; mkdir -p "$ctx/pkgs"
  cp "$IMAGES/executor/Containerfile" "$ctx/Containerfile"
  cp -a "$IMAGES/executor/rootfs" "$ctx/rootfs"
  cp "$IMAGES/executor/packages.txt" "$ctx/pkgs/packages.txt"
  # (offline: the executor's packages are already in the debootstrap rootfs)
  node "$STAGE_JS" app "$REPO" executor "$ctx/app" >"$CACHE/stage-executor.json"
  node -e '
    const s = require(process.argv[1]);
    for (const w of s.warnings) console.error("build: warning: " + w);
    console.error(`build: staged executor: ${s.packages.length} packages, native addons: ${s.native.length ? s.native.join(", ") : "none"}` +
      (s.pruned.length ? ` (left out ${s.pruned.length} prebuilds for other platforms)` : ""));
  ' "$CACHE/stage-executor.json"
  BASE_FOR_BUILD=$BASE_IMAGE BASE_ID=""
  build_image executor "$EXECUTOR_TAG" "$ctx" executor
  EXECUTOR_ID=$BUILT_ID
fi

for name in "${SELECTED_TEMPLATES[@]}"; do
  ctx=$STAGE/template-$name
  rm -rf "$ctx"; mkdir -p "$ctx/pkgs"
  cp -a "$IMAGES/templates/$name/." "$ctx/"
  if [[ -f "$ctx/packages.txt" ]]; then mv "$ctx/packages.txt" "$ctx/pkgs/packages.txt"; else : >"$ctx/pkgs/packages.txt"; fi
  if [[ "$MODE" == offline ]]; then
    read -r -a tpkgs <<<"$(pkg_list "$ctx/pkgs/packages.txt")"
    resolve_debs "$ctx/pkgs" "${tpkgs[@]}"
  fi
  BASE_FOR_BUILD=$EXECUTOR_TAG BASE_ID=$EXECUTOR_ID
  build_image "$name" "${TEMPLATE_IMAGE[$name]}" "$ctx" template --label "io.kiln.template=$name"
done

# Old untagged versions of Kiln's images (only those carrying Kiln's label),
# and offline base images other than the current ones (kept while in use).
B image prune -f --filter label=io.kiln.build-hash >/dev/null 2>&1 || true
if [[ "$MODE" == offline ]]; then
  while read -r img; do
    [[ "$img" == "$ROOTFS_IMAGE" || "$img" == "$BASE_IMAGE" ]] || B rmi "$img" >/dev/null 2>&1 || true
  done < <(B images --format '{{.Repository}}:{{.Tag}}' | grep -E "^localhost/kiln/(rootfs-$SUITE|base-$SUITE-node20):" || true)
fi

echo "Kiln images ($BUILDER, $MODE, $((SECONDS - T0))s):"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
