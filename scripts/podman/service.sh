#!/usr/bin/env bash
# Run Podman's Docker-compatible API (`podman system service`) for Kiln.
#
#   bash scripts/podman/service.sh start    # start in background; prints the socket path
#   bash scripts/podman/service.sh stop     # stop it (SIGTERM, then SIGKILL after 10 s)
#   bash scripts/podman/service.sh status   # exit 0 + socket path if it answers /_ping
#   bash scripts/podman/service.sh restart
#   eval "$(bash scripts/podman/service.sh env)"   # DOCKER_HOST, CONTAINERS_CONF, ...
#
# Environment (all optional):
#   KILN_PODMAN_DIR   state dir                (default: <repo>/.kiln/podman)
#   KILN_PODMAN_SOCK  API socket path          (default: $KILN_PODMAN_DIR/podman.sock)
#   KILN_PODMAN_PID   pidfile                  (default: $KILN_PODMAN_DIR/podman.pid)
#   KILN_PODMAN_LOG   service log              (default: $KILN_PODMAN_DIR/podman.log)
#   KILN_CONTAINERS_CONF  containers.conf used as is (default: <repo>/infra/podman/containers.conf
#                     rendered to $KILN_PODMAN_DIR/containers.conf with the absolute
#                     path of <repo>/infra/podman/seccomp.json as seccomp_profile)
#   KILN_PODMAN_START_TIMEOUT  seconds to wait for /_ping (default: 30)
#
# Only stdout carries the socket path (start/status), so scripts can do
#   SOCK=$(bash scripts/podman/service.sh start)
# Everything else goes to stderr.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${KILN_PODMAN_DIR:-$REPO/.kiln/podman}
SOCK=${KILN_PODMAN_SOCK:-$DIR/podman.sock}
PIDFILE=${KILN_PODMAN_PID:-$DIR/podman.pid}
LOG=${KILN_PODMAN_LOG:-$DIR/podman.log}
CONF_SRC=$REPO/infra/podman/containers.conf
SECCOMP=$REPO/infra/podman/seccomp.json
CONF=${KILN_CONTAINERS_CONF:-$DIR/containers.conf}
TIMEOUT=${KILN_PODMAN_START_TIMEOUT:-30}

log() { echo "podman-service: $*" >&2; }

# containers.conf has no relative paths: render the repo's file with the
# absolute seccomp profile path (unless KILN_CONTAINERS_CONF names a file).
render_conf() {
  [[ -z "${KILN_CONTAINERS_CONF:-}" ]] || return 0
  [[ -f "$CONF_SRC" && -f "$SECCOMP" ]] || { log "missing $CONF_SRC or $SECCOMP"; exit 1; }
  mkdir -p "$(dirname "$CONF")"
  sed "s|^#@KILN_SECCOMP_PROFILE@\$|seccomp_profile = \"$SECCOMP\"|" "$CONF_SRC" >"$CONF.tmp"
  grep -q '^seccomp_profile = ' "$CONF.tmp" || { rm -f "$CONF.tmp"; log "no #@KILN_SECCOMP_PROFILE@ marker in $CONF_SRC"; exit 1; }
  mv "$CONF.tmp" "$CONF"
}

ping_ok() {
  [[ -S "$SOCK" ]] || return 1
  [[ "$(curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" == "OK" ]]
}

# The pid from the pidfile, if that process is still our podman service.
our_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid=$(<"$PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  # Guard against pid reuse: it must be `podman ... system service ... <our socket>`.
  tr '\0' ' ' </proc/"$pid"/cmdline | grep -q "system service .*unix://$SOCK" || return 1
  echo "$pid"
}

start() {
  command -v podman >/dev/null || { log "podman not installed: run bash scripts/podman/install.sh"; exit 1; }
  command -v curl >/dev/null || { log "curl not installed: run bash scripts/podman/install.sh"; exit 1; }
  render_conf
  [[ -f "$CONF" ]] || { log "containers.conf not found: $CONF"; exit 1; }
  if (( ${#SOCK} > 100 )); then
    log "warning: socket path is ${#SOCK} chars; unix sockets allow ~107. Set KILN_PODMAN_SOCK to a shorter path."
  fi
  if our_pid >/dev/null && ping_ok; then
    log "already running (pid $(our_pid))"
    echo "$SOCK"
    return 0
  fi
  if pid=$(our_pid); then
    log "pid $pid exists but does not answer; stopping it first"
    stop
  fi
  mkdir -p "$DIR" "$(dirname "$SOCK")" "$(dirname "$PIDFILE")" "$(dirname "$LOG")"
  rm -f "$SOCK"
  # setsid: own session, so the service outlives this shell and is not hit by
  # the caller's job-control signals. --time=0: never exit on idle.
  CONTAINERS_CONF="$CONF" setsid podman system service --time=0 "unix://$SOCK" \
    >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  local deadline=$((SECONDS + TIMEOUT))
  until ping_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "service exited during startup; last log lines:"
      tail -n 20 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if (( SECONDS >= deadline )); then
      log "no answer on $SOCK after ${TIMEOUT}s; see $LOG"
      stop
      exit 1
    fi
    sleep 0.1
  done
  log "started pid $pid, CONTAINERS_CONF=$CONF, log $LOG"
  echo "$SOCK"
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    log "not running"
    rm -f "$PIDFILE"
    [[ -S "$SOCK" ]] && ! ping_ok && rm -f "$SOCK"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$SOCK"
  log "stopped pid $pid"
}

status() {
  local pid
  if pid=$(our_pid) && ping_ok; then
    log "running (pid $pid)"
    echo "$SOCK"
    return 0
  fi
  log "not running"
  return 1
}

env_lines() {
  render_conf
  cat <<EOT
export KILN_PODMAN_SOCK='$SOCK'
export DOCKER_HOST='unix://$SOCK'
export CONTAINERS_CONF='$CONF'
EOT
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  env) env_lines ;;
  *) echo "usage: $0 start|stop|restart|status|env" >&2; exit 2 ;;
esac
