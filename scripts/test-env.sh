#!/usr/bin/env bash
# Test environment for deckhand: a Docker engine, compose v1 (docker-compose)
# and v2 (the docker compose plugin), local images, PostgreSQL, an ACME server
# (Pebble) and the system users the agent runs as, all offline but for
# Debian's mirror.
#
#   scripts/test-env.sh up [--rebuild]   install + start what the tests need
#                                        (--rebuild: images again; the cached
#                                        PostgreSQL rootfs stays)
#   scripts/test-env.sh down [--all]     remove test containers (--all: stop dockerd too)
#   scripts/test-env.sh status           what is installed / running
#   scripts/test-env.sh pebble-start     start pebble-challtestsrv + pebble on loopback
#   scripts/test-env.sh pebble-stop
#   scripts/test-env.sh pebble-certs     install pebble and its TLS certs, print the
#                                        paths of both (KEY=VALUE lines)
#   scripts/test-env.sh web-image VER    build deckhand-test/web:VER (VERSION=VER)
#   scripts/test-env.sh smoke            bring the basic fixture stack up, check, tear down
#   scripts/test-env.sh engine-restart   stop dockerd (its containers stop too) and start it again
#
# Every step checks first and does nothing when already done, so `up` on a
# ready machine takes a second or two. Must run as root (it installs packages
# and starts dockerd). Nothing here talks to anything but Debian's mirror (as
# configured for apt on this machine) and 127.0.0.0/8.
set -euo pipefail

# ---------------------------------------------------------------- settings --

# Caches survive fresh clones: the PostgreSQL rootfs tarball and Pebble's certs.
CACHE_DIR=${DECKHAND_TEST_CACHE_DIR:-/var/cache/deckhand-test}
LOG_DIR=${DECKHAND_TEST_LOG_DIR:-/var/log/deckhand-test}
RUN_DIR=${DECKHAND_TEST_RUN_DIR:-/run/deckhand-test}
PEBBLE_DIR="$CACHE_DIR/pebble"

# Debian suite and PostgreSQL major version baked into deckhand-test/postgres.
PG_SUITE=bookworm
PG_MAJOR=15
# Bump when the rootfs recipe (package list, pruning) changes: the cached
# tarball's name carries it, so a stale cache is never reused.
PG_ROOTFS_RECIPE=2

IMG_BUSYBOX=deckhand-test/busybox:latest
IMG_WEB=deckhand-test/web:latest
IMG_POSTGRES=deckhand-test/postgres:$PG_MAJOR

# Compose v2 (what real servers run) is the CLI plugin from Debian's
# docker-compose package of this suite: one static binary. bookworm's own
# docker-compose (installed below) is v1.
COMPOSE_V2_SUITE=trixie
COMPOSE_PLUGIN_DIR=${DECKHAND_TEST_CLI_PLUGINS_DIR:-/usr/libexec/docker/cli-plugins}
COMPOSE_V2_CACHE="$CACHE_DIR/compose-v2"

# Pebble with ACME Renewal Information (ARI: `renewalInfo` in the directory,
# the management API's /set-renewal-info/) is this suite's: bookworm's 2.4
# has none. Its two static binaries are installed under PEBBLE_BIN_DIR and
# used instead of bookworm's /usr/bin/pebble; test/helpers/pebble.ts runs
# them too.
PEBBLE_SUITE=${DECKHAND_TEST_PEBBLE_SUITE:-trixie}
PEBBLE_BIN_DIR=${DECKHAND_TEST_PEBBLE_BIN_DIR:-/usr/local/lib/deckhand-test/pebble}
PEBBLE_DEB_CACHE="$CACHE_DIR/pebble-$PEBBLE_SUITE"
PEBBLE="$PEBBLE_BIN_DIR/pebble"
CHALLTESTSRV="$PEBBLE_BIN_DIR/pebble-challtestsrv"

# The agent runs as this system user in group docker, as the systemd unit
# does; the second user is not in group docker (for the "no access to the
# Docker socket" tests).
AGENT_USER=deckhand
AGENT_USER_NODOCKER=deckhand-nodocker

# Pebble listens on loopback only.
PEBBLE_ACME_ADDR=127.0.0.1:14000
PEBBLE_MGMT_ADDR=127.0.0.1:15000
PEBBLE_HTTP_PORT=5002
PEBBLE_TLS_PORT=5001
CHALLTESTSRV_DNS_ADDR=127.0.0.1:8053
CHALLTESTSRV_MGMT_ADDR=127.0.0.1:8055

# Packages the test suite uses (Debian names).
APT_PACKAGES=(
  docker.io docker-compose busybox-static debootstrap
  postgresql postgresql-client pebble openssl iproute2
  prometheus-node-exporter wrk curl ca-certificates
  # References for test/bench/cert-issue.ts: the same Pebble issues and
  # renews a certificate with each of them and with deckhand, in one run.
  certbot lego
)

# The docker CLI first on PATH may be newer than Debian's engine and has no
# buildx plugin here: use the classic builder, which needs nothing from a
# registry for `FROM <local image>`.
export DOCKER_BUILDKIT=0

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ----------------------------------------------------------------- helpers --

log() { printf '[test-env] %s\n' "$*" >&2; }
die() { printf '[test-env] error: %s\n' "$*" >&2; exit 1; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, starts dockerd)"
}

# One `up`/`down` at a time: parallel CI jobs on one machine would otherwise
# race on apt, dockerd and image builds.
take_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/lock"
  flock 9
}

# Runs a command detached from this shell's terminal and output, so CI (which
# waits for every process holding its stdout/stderr) does not hang on it.
# Usage: spawn_detached LOGFILE PIDFILE cmd args...
spawn_detached() {
  local logfile=$1 pidfile=$2
  shift 2
  # The daemon keeps no descriptor but its standard three: a lock held by
  # whoever ran this script (take_lock's fd 9, or an outer flock(1) around
  # the whole run) would otherwise be held for as long as the daemon lives.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid nohup "$@" >"$logfile" 2>&1 </dev/null
  ) &
  echo $! >"$pidfile"
}

# True when PID is alive (not a zombie) and its command name is NAME: a
# stale pid file may name a recycled PID.
pid_is() {
  local pid=$1 name=$2 comm state
  [[ -n $pid ]] || return 1
  # /proc/PID/comm holds at most 15 characters of the name.
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) && [[ $comm == "${name:0:15}" ]] || return 1
  # Field 3 of stat is the state; the name (field 2) has no spaces here.
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) && [[ $state != Z ]]
}

# Stops the process recorded in PIDFILE if it is still NAME: SIGTERM, then
# SIGKILL after TIMEOUT seconds (default 10).
stop_pidfile() {
  local pidfile=$1 name=$2 timeout=${3:-10} pid i
  [[ -r $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if pid_is "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      pid_is "$pid" "$name" || break
      sleep 0.1
    done
    if pid_is "$pid" "$name"; then
      log "$name ($pid) ignored SIGTERM, killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# Temporary directories of this run, removed on exit whatever happens.
TMP_DIRS=()
cleanup() {
  [[ ${#TMP_DIRS[@]} -eq 0 ]] || rm -rf "${TMP_DIRS[@]}"
}
trap cleanup EXIT

# new_tmp_dir VAR [PARENT]: makes a temporary directory (under PARENT, default
# $TMPDIR or /tmp), stores its path in VAR and removes it at exit.
new_tmp_dir() {
  local dir
  dir=$(mktemp -d "${2:-${TMPDIR:-/tmp}}/deckhand-test.XXXXXX")
  TMP_DIRS+=("$dir")
  printf -v "$1" '%s' "$dir"
}

docker_ok() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The recipe label of an image ("" if absent). Images carry a hash of what
# they were built from, so a changed recipe or base rebuilds them by itself.
image_recipe() {
  docker image inspect --format '{{index .Config.Labels "deckhand.test.recipe"}}' "$1" 2>/dev/null || true
}

# True when IMAGE must be (re)built: missing, built from another recipe, or
# --rebuild was given.
image_stale() {
  local image=$1 recipe=$2
  [[ $REBUILD -eq 1 ]] && return 0
  image_exists "$image" || return 0
  [[ $(image_recipe "$image") == "$recipe" ]] && return 1
  log "$image was built from another recipe, rebuilding"
  return 0
}

# ID of IMAGE, or "" when there is none.
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# After IMAGE was rebuilt, removes the image it replaced (OLD_ID), unless a
# container still uses it: 230 MB per stale PostgreSQL image adds up.
drop_replaced_image() {
  local image=$1 old=$2
  [[ -n $old && $old != "$(image_id "$image")" ]] || return 0
  docker image rm "$old" >/dev/null 2>&1 || log "kept replaced image ${old:7:12} (in use)"
}

# Hash of the files in a build context directory (names + contents).
context_hash() {
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

# ---------------------------------------------------------------- packages --

pkg_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

install_packages() {
  local missing=() p added_policy=0
  for p in "${APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0

  log "installing: ${missing[*]}"
  # No init system runs services here: a policy-rc.d that answers 101 makes
  # the postinst scripts of docker.io, postgresql and node-exporter skip
  # starting their daemons instead of failing. Only added if absent, and
  # removed again afterwards.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
  } >"$LOG_DIR/apt.log" 2>&1 || rc=$?
  [[ $added_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  [[ $rc -eq 0 ]] || { tail -n 30 "$LOG_DIR/apt.log" >&2; die "apt-get failed (full log: $LOG_DIR/apt.log)"; }
}

# ---------------------------------------------- packages of another suite --

# Runs apt-get on a source list, package lists and cache of its own (under
# ROOT) for another Debian suite: the system's sources, lists, package cache
# and installed packages are never touched. Usage: suite_apt ROOT args...
suite_apt() {
  local root=$1
  shift
  DEBIAN_FRONTEND=noninteractive apt-get -q \
    -o Dir::Etc::sourcelist="$root/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$root/lists" -o Dir::Cache="$root/cache" \
    -o APT::Get::List-Cleanup=0 "$@"
}

# fetch_suite_deb VAR SUITE PACKAGE DIR: downloads Debian SUITE's PACKAGE into
# DIR once; later runs (and fresh clones) reuse the file. Stores the .deb's
# path in VAR. The log goes to $LOG_DIR/PACKAGE-SUITE.log. Not to be called
# in $(...): its temporary directory is only cleaned up by this shell's exit
# trap.
fetch_suite_deb() {
  local var=$1 suite=$2 package=$3 dir=$4 cached
  cached=$(compgen -G "$dir/${package}_*.deb" | head -n 1 || true)
  if [[ -z $cached ]]; then
    local root="$dir/apt" mirror dl logfile="$LOG_DIR/$package-$suite.log"
    mirror=$(debian_mirror)
    mkdir -p "$root/lists/partial" "$root/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$root/sources.list"
    log "fetching $package from Debian $suite (log: $logfile)"
    new_tmp_dir dl "$dir"
    {
      suite_apt "$root" update &&
        (cd "$dl" && suite_apt "$root" download "$package")
    } >"$logfile" 2>&1 || {
      tail -n 20 "$logfile" >&2
      die "fetching $package from $suite failed (log: $logfile)"
    }
    cached=$(compgen -G "$dl/${package}_*.deb" | head -n 1 || true)
    [[ -n $cached ]] || die "apt-get download left no ${package}_*.deb (log: $logfile)"
    # A rename on one filesystem: a half-downloaded file is never a cache hit.
    mv "$cached" "$dir/"
    cached="$dir/$(basename "$cached")"
    # The package is the cache; the suite's lists (20 MB) are not needed again.
    rm -rf "$root/lists" "$root/cache"
  fi
  printf -v "$var" '%s' "$cached"
}

# ------------------------------------------------------------- compose v2 --

# The compose v2 CLI plugin, so `docker compose` works next to v1's
# `docker-compose`. Only the plugin is installed: the package's
# /usr/bin/docker-compose (a link to it) would shadow v1.
install_compose_v2() {
  local plugin="$COMPOSE_PLUGIN_DIR/docker-compose"
  [[ -x $plugin ]] && "$plugin" version >/dev/null 2>&1 && return 0
  mkdir -p "$COMPOSE_V2_CACHE"
  local deb tmp
  fetch_suite_deb deb "$COMPOSE_V2_SUITE" docker-compose "$COMPOSE_V2_CACHE"
  new_tmp_dir tmp
  dpkg-deb -x "$deb" "$tmp"
  [[ -x $tmp/usr/libexec/docker/cli-plugins/docker-compose ]] ||
    die "$(basename "$deb") has no usr/libexec/docker/cli-plugins/docker-compose"
  mkdir -p "$COMPOSE_PLUGIN_DIR"
  install -m 0755 "$tmp/usr/libexec/docker/cli-plugins/docker-compose" "$plugin.new"
  mv "$plugin.new" "$plugin"
  log "installed compose $("$plugin" version --short 2>/dev/null) as $plugin"
}

# Pebble and pebble-challtestsrv from Debian $PEBBLE_SUITE's pebble package,
# into $PEBBLE_BIN_DIR, with the package's version and suite in
# $PEBBLE_BIN_DIR/VERSION and SUITE. Done again only when a binary is missing
# or does not run, or they came from another suite.
install_pebble_ari() {
  if [[ -x $PEBBLE && -x $CHALLTESTSRV && -s $PEBBLE_BIN_DIR/VERSION ]] &&
    [[ $(cat "$PEBBLE_BIN_DIR/SUITE" 2>/dev/null || true) == "$PEBBLE_SUITE" ]] &&
    "$PEBBLE" -help >/dev/null 2>&1 && "$CHALLTESTSRV" -help >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$PEBBLE_DEB_CACHE"
  local deb tmp bin
  fetch_suite_deb deb "$PEBBLE_SUITE" pebble "$PEBBLE_DEB_CACHE"
  new_tmp_dir tmp
  dpkg-deb -x "$deb" "$tmp"
  mkdir -p "$PEBBLE_BIN_DIR"
  for bin in pebble pebble-challtestsrv; do
    [[ -x $tmp/usr/bin/$bin ]] || die "$(basename "$deb") has no usr/bin/$bin"
    install -m 0755 "$tmp/usr/bin/$bin" "$PEBBLE_BIN_DIR/$bin.new"
    mv "$PEBBLE_BIN_DIR/$bin.new" "$PEBBLE_BIN_DIR/$bin"
  done
  dpkg-deb -f "$deb" Version >"$PEBBLE_BIN_DIR/VERSION"
  echo "$PEBBLE_SUITE" >"$PEBBLE_BIN_DIR/SUITE"
  log "installed pebble $(pebble_version) ($PEBBLE_SUITE) in $PEBBLE_BIN_DIR"
}

# The flag that sets challtestsrv's DNS listener: -dns01 up to 2.6, then
# -dnsserver.
challtestsrv_dns_flag() {
  # The whole help text first: `grep -q` in a pipe would end early, and the
  # SIGPIPE it leaves fails the pipe under pipefail.
  local help
  help=$("$CHALLTESTSRV" -help 2>&1 || true)
  if grep -q '^ *-dns01 ' <<<"$help"; then echo -dns01; else echo -dnsserver; fi
}

# "2.6.0-1" (the Debian package's version), or "missing".
pebble_version() {
  if [[ -x $PEBBLE && -s $PEBBLE_BIN_DIR/VERSION ]]; then cat "$PEBBLE_BIN_DIR/VERSION"; else echo missing; fi
}

# "1.29.2" / "2.26.1-4", or "missing".
compose_v1_version() { docker-compose version --short 2>/dev/null || echo missing; }
compose_v2_version() { docker compose version --short 2>/dev/null || echo missing; }

# ------------------------------------------------------------------- users --

in_group() { [[ " $(id -nG "$1" 2>/dev/null) " == *" $2 "* ]]; }

# A system user with its own group, no home and no login shell, as an
# installer makes one for a daemon.
ensure_system_user() {
  local user=$1
  id -u "$user" >/dev/null 2>&1 && return 0
  log "creating system user $user"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
}

# $AGENT_USER in group docker (what the unit's SupplementaryGroups= gives
# it), $AGENT_USER_NODOCKER not.
ensure_agent_users() {
  getent group docker >/dev/null || die "group docker missing (docker.io not installed?)"
  ensure_system_user "$AGENT_USER"
  in_group "$AGENT_USER" docker || usermod -aG docker "$AGENT_USER"
  ensure_system_user "$AGENT_USER_NODOCKER"
  if in_group "$AGENT_USER_NODOCKER" docker; then gpasswd -d "$AGENT_USER_NODOCKER" docker >/dev/null; fi
}

describe_user() {
  id "$1" 2>/dev/null || echo missing
}

# ------------------------------------------------------------------ dockerd --

# dockerd from Debian's docker.io, not any other one on PATH.
DOCKERD=/usr/sbin/dockerd

# Storage driver flag for dockerd, unless /etc/docker/daemon.json already sets
# one (dockerd refuses a driver given twice).
daemon_json_sets_driver() {
  [[ -r /etc/docker/daemon.json ]] && grep -q '"storage-driver"' /etc/docker/daemon.json
}

# Starts dockerd with DRIVER ("" = whatever daemon.json says) and waits up to
# 30 s for `docker version` to answer. Returns 1 if it never does.
start_dockerd_with() {
  local driver=$1 args=() i
  [[ -n $driver ]] && args+=(--storage-driver="$driver")
  log "starting dockerd ${args[*]:-} (log: $LOG_DIR/dockerd.log)"
  spawn_detached "$LOG_DIR/dockerd.log" "$RUN_DIR/dockerd.pid" "$DOCKERD" "${args[@]}"
  for ((i = 0; i < 300; i++)); do
    docker_ok && return 0
    # Stop waiting as soon as it died (bad driver, port in use, ...).
    pid_is "$(cat "$RUN_DIR/dockerd.pid")" dockerd || return 1
    sleep 0.1
  done
  return 1
}

ensure_dockerd() {
  docker_ok && return 0
  [[ -x $DOCKERD ]] || die "$DOCKERD missing (docker.io not installed?)"
  # A dockerd that is still starting or hung: leave it alone, report it.
  if [[ -r /var/run/docker.pid ]] && pid_is "$(cat /var/run/docker.pid)" dockerd; then
    die "dockerd (pid $(cat /var/run/docker.pid)) runs but does not answer; see $LOG_DIR/dockerd.log"
  fi

  if daemon_json_sets_driver; then
    start_dockerd_with "" || die "dockerd did not start; see $LOG_DIR/dockerd.log"
    return 0
  fi
  # overlay2 is fast and works on ext4/xfs; vfs works everywhere (copies
  # every layer). Remember what worked so later starts skip the probe.
  local remembered="" driver
  [[ -r $CACHE_DIR/storage-driver ]] && remembered=$(cat "$CACHE_DIR/storage-driver")
  # A driver that worked before and fails now fails for a passing reason (a
  # dockerd of another run still holding its state while restarting): falling
  # back to vfs then would hide every image and stick. Only a first start probes.
  if [[ -n $remembered ]]; then
    start_dockerd_with "$remembered" && return 0
    tail -n 5 "$LOG_DIR/dockerd.log" >&2 || true
    stop_pidfile "$RUN_DIR/dockerd.pid" dockerd
    die "dockerd did not start with storage driver $remembered, which worked before; see $LOG_DIR/dockerd.log (remove $CACHE_DIR/storage-driver to probe again)"
  fi
  local candidates=(overlay2 vfs) seen=" "
  for driver in "${candidates[@]}"; do
    [[ -n $driver && $seen != *" $driver "* ]] || continue
    seen+="$driver "
    if start_dockerd_with "$driver"; then
      echo "$driver" >"$CACHE_DIR/storage-driver"
      return 0
    fi
    log "dockerd failed with storage driver $driver:"
    tail -n 5 "$LOG_DIR/dockerd.log" >&2 || true
    stop_pidfile "$RUN_DIR/dockerd.pid" dockerd
    cp "$LOG_DIR/dockerd.log" "$LOG_DIR/dockerd.$driver-failed.log" || true
  done
  die "dockerd did not start with any storage driver; see $LOG_DIR/dockerd.*.log"
}

stop_dockerd() {
  local pid=""
  [[ -r /var/run/docker.pid ]] && pid=$(cat /var/run/docker.pid)
  if pid_is "$pid" dockerd; then
    echo "$pid" >"$RUN_DIR/dockerd.pid"
    log "stopping dockerd ($pid)"
    # dockerd first stops every running container (10 s grace each, in
    # parallel), then containerd.
    stop_pidfile "$RUN_DIR/dockerd.pid" dockerd 40
  fi
  rm -f "$RUN_DIR/dockerd.pid"
}

# ------------------------------------------------------------------ images --

# deckhand-test/busybox: a static busybox with its applets as symlinks,
# imported from a tarball (no registry, no build step).
build_busybox_image() {
  local bb=/bin/busybox recipe tmp
  [[ -x $bb ]] || die "$bb missing (busybox-static not installed?)"
  # The recipe is the busybox binary plus this function's layout version.
  recipe="bb1-$(sha256sum "$bb" | cut -c1-16)"
  image_stale "$IMG_BUSYBOX" "$recipe" || return 0

  log "building $IMG_BUSYBOX"
  new_tmp_dir tmp
  local root="$tmp/root" applet
  mkdir -p "$root"/{bin,etc,tmp,root,www,var/run,usr}
  chmod 1777 "$root/tmp"
  cp "$bb" "$root/bin/busybox"
  # Every applet this busybox has (sh, httpd, wget, nc, sleep, ...).
  for applet in $("$bb" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  ln -s bin "$root/sbin"
  ln -s ../bin "$root/usr/bin"
  ln -s ../bin "$root/usr/sbin"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" --numeric-owner --owner=0 --group=0 --sort=name -cf "$tmp/rootfs.tar" .
  local old
  old=$(image_id "$IMG_BUSYBOX")
  docker import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["sh"]' \
    --change "LABEL deckhand.test.recipe=$recipe" \
    "$tmp/rootfs.tar" "$IMG_BUSYBOX" >/dev/null
  drop_replaced_image "$IMG_BUSYBOX" "$old"
}

# Writes the build context of deckhand-test/web into DIR.
write_web_context() {
  local dir=$1
  mkdir -p "$dir/www"
  cat >"$dir/Dockerfile" <<'EOF'
FROM deckhand-test/busybox:latest
# VERSION tells builds apart: served at /version, also a label.
ARG VERSION=1
ENV PORT=8080 BIND_ADDR=127.0.0.1 VERSION=$VERSION
LABEL deckhand.test.web.version=$VERSION
COPY www/ /www/
COPY entrypoint.sh /entrypoint.sh
HEALTHCHECK --interval=2s --timeout=2s --start-period=2s --retries=3 \
  CMD wget -q -O- "http://127.0.0.1:${PORT}/health" >/dev/null || exit 1
ENTRYPOINT ["/entrypoint.sh"]
EOF
  cat >"$dir/entrypoint.sh" <<'EOF'
#!/bin/sh
# Busybox httpd on $BIND_ADDR:$PORT serving /www.
#   /health   200 "ok" (absent when WEB_HEALTHY=0, so the healthcheck fails)
#   /version  the VERSION variable
# EXIT_AFTER=N makes the container exit with EXIT_CODE (default 1) after N
# seconds: a crash-looping service on demand.
# Arguments, as in `compose run web CMD...`, run instead of the server.
set -eu
if [ "$#" -gt 0 ]; then exec "$@"; fi
printf '%s\n' "$VERSION" >/www/version
if [ "${WEB_HEALTHY:-1}" = 0 ]; then rm -f /www/health; else echo ok >/www/health; fi
if [ -n "${EXIT_AFTER:-}" ]; then
  httpd -f -p "$BIND_ADDR:$PORT" -h /www &
  sleep "$EXIT_AFTER"
  kill "$!" 2>/dev/null || true
  exit "${EXIT_CODE:-1}"
fi
exec httpd -f -p "$BIND_ADDR:$PORT" -h /www
EOF
  chmod 755 "$dir/entrypoint.sh"
  echo '<!doctype html><title>deckhand test web</title><p>deckhand test web' >"$dir/www/index.html"
}

# Builds deckhand-test/web:TAG with VERSION=VER (both default "latest"/"1").
build_web_image() {
  local tag=${1:-latest} version=${2:-1} image tmp recipe base_id old
  image="deckhand-test/web:$tag"
  new_tmp_dir tmp
  write_web_context "$tmp"
  base_id=$(image_id "$IMG_BUSYBOX")
  recipe="web1-$(context_hash "$tmp")-${base_id:7:12}-v$version"
  if image_stale "$image" "$recipe"; then
    log "building $image (VERSION=$version)"
    old=$(image_id "$image")
    docker build -q --build-arg "VERSION=$version" --label "deckhand.test.recipe=$recipe" \
      -t "$image" "$tmp" >"$LOG_DIR/build-web.log" 2>&1 ||
      { cat "$LOG_DIR/build-web.log" >&2; die "docker build of $image failed"; }
    drop_replaced_image "$image" "$old"
  fi
}

# Prints "URI SUITE" for every enabled binary source apt uses on this machine,
# from both one-line (.list) and deb822 (.sources) files.
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    awk '$1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }   # [options]
      print $i, $(i + 1)
    }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    awk '
      function flush(  i, j) {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print U[i], S[j]
        types = ""; enabled = ""; nu = 0; ns = 0
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1)
        if (key == "types:")   { types = $0 }
        if (key == "uris:")    { for (i = 2; i <= NF; i++) U[++nu] = $i }
        if (key == "suites:")  { for (i = 2; i <= NF; i++) S[++ns] = $i }
        if (key == "enabled:") { enabled = tolower($2) }
      }
      END { flush() }' "$f"
  done
}

# The Debian mirror apt uses for $PG_SUITE (or, failing that, for the
# machine's own release). DECKHAND_TEST_DEBIAN_MIRROR overrides.
debian_mirror() {
  if [[ -n ${DECKHAND_TEST_DEBIAN_MIRROR:-} ]]; then
    echo "$DECKHAND_TEST_DEBIAN_MIRROR"
    return
  fi
  local m
  m=$(apt_sources | awk -v s="$PG_SUITE" '$2 == s { print $1; exit }')
  [[ -z $m ]] && m=$(apt_sources | awk '$1 ~ /^https?:.*debian/ && $1 !~ /security/ && $2 !~ /-/ { print $1; exit }')
  [[ -n $m ]] || die "no Debian mirror found in apt's sources; set DECKHAND_TEST_DEBIAN_MIRROR"
  echo "$m"
}

# debootstrap ROOT from MIRROR and install postgresql-$PG_MAJOR into it.
make_pg_rootfs() {
  local root=$1 mirror=$2
  debootstrap --variant=minbase "$PG_SUITE" "$root" "$mirror"

  # The same Debian sources as this machine for the suite (updates and
  # security included), so the chroot gets current PostgreSQL packages.
  apt_sources | awk -v s="$PG_SUITE" '$2 == s || index($2, s "-") == 1 { print "deb " $1 " " $2 " main" }' |
    sort -u >"$root/etc/apt/sources.list"
  [[ -s $root/etc/apt/sources.list ]] || echo "deb $mirror $PG_SUITE main" >"$root/etc/apt/sources.list"

  # No services start inside a chroot, and no cluster is created at
  # install time: the entrypoint makes one in $PGDATA on first start.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  mkdir -p "$root/etc/postgresql-common"
  echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.conf"
  cp /etc/resolv.conf "$root/etc/resolv.conf"

  # A private mount namespace: the /proc mounted for apt vanishes with it,
  # even if this script dies half-way.
  # shellcheck disable=SC2016  # $1/$2 belong to the inner sh
  unshare --mount --propagation private -- sh -ec '
    mount -t proc proc "$1/proc"
    chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
      sh -ec "apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-$2 && apt-get clean"
  ' sh "$root" "$PG_MAJOR"

  # Shrink: JIT (LLVM and its solver z3, ~130 MB; jit=off in the image),
  # docs, man pages, translations, locale sources (C.UTF-8 is built into
  # glibc), apt lists.
  rm -rf "$root/usr/lib/postgresql/$PG_MAJOR/lib/bitcode" \
    "$root/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit"*.so \
    "$root"/usr/lib/*-linux-gnu/libLLVM* "$root"/usr/lib/*-linux-gnu/libz3.so* \
    "$root"/usr/share/i18n/locales "$root"/usr/share/i18n/charmaps \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
    "$root"/var/cache/debconf/*-old "$root"/var/log/*.log "$root"/var/log/apt/*
  rm -f "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
}

# The cached PostgreSQL rootfs tarball (see ensure_pg_rootfs).
PG_TARBALL="$CACHE_DIR/postgres$PG_MAJOR-$PG_SUITE-rootfs-r$PG_ROOTFS_RECIPE.tar"

# Builds (once, then cached) TARBALL from a fresh root made by MAKER ROOT
# MIRROR, logging to LOG_DIR/NAME.log; tarballs of older recipes matching
# STALE_GLOB are deleted. Not to be called in $(...): its temporary directory
# is only cleaned up by this shell's exit trap.
#   cached_rootfs TARBALL MAKER NAME STALE_GLOB WHAT
cached_rootfs() {
  local tarball=$1 maker=$2 name=$3 stale=$4 what=$5
  [[ -s $tarball ]] && return 0
  local mirror tmp rc log_file="$LOG_DIR/$name.log"
  mirror=$(debian_mirror)
  # In the cache dir: the final mv is then a rename on one filesystem.
  new_tmp_dir tmp "$CACHE_DIR"
  log "$what (about a minute; log: $log_file)"
  # errexit is ignored inside anything tested with || or if, so run the
  # steps in a subshell with errexit on, and look at its status afterwards.
  set +e
  (
    set -e
    "$maker" "$tmp/root" "$mirror"
    tar -C "$tmp/root" --numeric-owner --sort=name \
      --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' --exclude='./tmp/*' \
      -cf "$tmp/rootfs.tar" .
  ) >"$log_file" 2>&1
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then
    tail -n 30 "$log_file" >&2
    die "building $name failed (log: $log_file)"
  fi
  # Atomic: a half-written tarball is never taken for a cache hit.
  mv "$tmp/rootfs.tar" "$tarball"
  # Older recipes' tarballs are dead weight.
  find "$CACHE_DIR" -maxdepth 1 -name "$stale" ! -path "$tarball" -delete
}

# The cached PostgreSQL rootfs: a minbase debootstrap with postgresql-$PG_MAJOR, shrunk.
ensure_pg_rootfs() {
  cached_rootfs "$PG_TARBALL" make_pg_rootfs postgres-rootfs "postgres*-rootfs-*.tar" \
    "debootstrap $PG_SUITE (minbase) from apt's mirror, then postgresql-$PG_MAJOR"
}

# ------------------------------------------------------------ fresh server --

# A fresh Debian server for install.sh's end-to-end test: a minbase
# debootstrap with systemd as init (systemd systemd-sysv dbus) and what a
# cloud image has (iproute2, openssl, procps, ca-certificates, curl, git),
# imported as deckhand-test/server. Run with the recipe in DESIGN.md
# (docker run -d --cap-add ALL --cap-drop SYS_RESOURCE ... /sbin/init).
SERVER_ROOTFS_RECIPE=1
IMG_SERVER=deckhand-test/server:bookworm
SERVER_TARBALL="$CACHE_DIR/server-bookworm-rootfs-r$SERVER_ROOTFS_RECIPE.tar"

make_server_rootfs() {
  local root=$1 mirror=$2
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,openssl,procps,ca-certificates,curl,git,less \
    bookworm "$root" "$mirror"
  # A fresh box's machine-id is made at first boot; the serial console and
  # units that need hardware are off in a container.
  : >"$root/etc/machine-id"
  for u in getty@tty1.service console-getty.service systemd-logind.service systemd-timesyncd.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
  done
  echo 'deckhand-e2e' >"$root/etc/hostname"
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
  : >"$root/etc/resolv.conf"
}

ensure_server_image() {
  if image_exists "$IMG_SERVER" && [[ $(image_recipe "$IMG_SERVER") == "$SERVER_ROOTFS_RECIPE" ]]; then return 0; fi
  cached_rootfs "$SERVER_TARBALL" make_server_rootfs server-rootfs "server-*-rootfs-*.tar" \
    "debootstrap bookworm with systemd for the fresh-server image"
  docker import --change 'CMD ["/sbin/init"]' \
    --change "LABEL deckhand.test.recipe=$SERVER_ROOTFS_RECIPE" "$SERVER_TARBALL" "$IMG_SERVER" >/dev/null
  log "imported $IMG_SERVER"
}

# Writes the build context of deckhand-test/postgres (minus the rootfs) into DIR.
write_postgres_context() {
  local dir=$1
  cat >"$dir/Dockerfile" <<EOF
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data PGPORT=5432 POSTGRES_USER=postgres
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
# SIGINT = fast shutdown (SIGTERM would wait for every client to leave).
STOPSIGNAL SIGINT
HEALTHCHECK --interval=2s --timeout=3s --start-period=60s --retries=5 \\
  CMD pg_isready -q -h 127.0.0.1 -p "\$PGPORT" -U "\$POSTGRES_USER" -d "\${POSTGRES_DB:-\$POSTGRES_USER}" || exit 1
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
EOF
  cat >"$dir/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# PostgreSQL entrypoint, after the official image's contract:
#   POSTGRES_USER (default postgres) is created as superuser with
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust);
#   POSTGRES_DB (default $POSTGRES_USER) is created; *.sql and *.sh in
#   /docker-entrypoint-initdb.d run once, on first start.
#   PGDATA (default /var/lib/postgresql/data), PGPORT (default 5432),
#   POSTGRES_LISTEN_ADDRESSES (default '*'; 127.0.0.1 on the host network).
#   The local socket is trusted, TCP clients from anywhere need the
#   password (md5 or SCRAM).
# Arguments starting with "-" (or "postgres -...") go to postgres; any other
# command is run instead.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}" "${PGPORT:=5432}" "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}" "${POSTGRES_HOST_AUTH_METHOD:=md5}"
: "${POSTGRES_LISTEN_ADDRESSES:=*}"
export PGDATA PGPORT

if [ "${1:-}" = postgres ]; then shift; fi
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then exec "$@"; fi

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
chmod 2775 /var/run/postgresql

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    echo "entrypoint: POSTGRES_PASSWORD is empty; set it (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" >/dev/null
  rm -f "$pwfile"
  {
    echo "host all all 0.0.0.0/0 $POSTGRES_HOST_AUTH_METHOD"
    echo "host all all ::/0 $POSTGRES_HOST_AUTH_METHOD"
  } >>"$PGDATA/pg_hba.conf"
  # The JIT's LLVM libraries are not in this image. listen_addresses and
  # port come from the command line at every start, so env changes apply.
  echo "jit = off" >>"$PGDATA/postgresql.conf"

  # Create the database and run init scripts on a socket-only server, so
  # the healthcheck (TCP) stays red until the real start below.
  as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p $PGPORT" start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    # psql quotes the name (:"db"); it does not interpolate with -c.
    echo 'CREATE DATABASE :"db";' |
      as_postgres psql -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -v db="$POSTGRES_DB"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "entrypoint: running $f"; as_postgres psql -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
      *.sh) echo "entrypoint: running $f"; . "$f" ;;
    esac
  done
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "entrypoint: initialized $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups \
  postgres -D "$PGDATA" -p "$PGPORT" -c listen_addresses="$POSTGRES_LISTEN_ADDRESSES" "$@"
EOF
  chmod 755 "$dir/docker-entrypoint.sh"
}

build_postgres_image() {
  local tmp recipe old
  # In the cache dir, so the 200 MB rootfs can be hard-linked into it.
  new_tmp_dir tmp "$CACHE_DIR"
  write_postgres_context "$tmp"
  # Cheap to compute: the tarball's name encodes its recipe.
  recipe="pg1-$(context_hash "$tmp")-r$PG_ROOTFS_RECIPE"
  image_stale "$IMG_POSTGRES" "$recipe" || return 0
  ensure_pg_rootfs
  ln "$PG_TARBALL" "$tmp/rootfs.tar" 2>/dev/null || cp "$PG_TARBALL" "$tmp/rootfs.tar"
  log "building $IMG_POSTGRES from $PG_TARBALL"
  old=$(image_id "$IMG_POSTGRES")
  docker build -q --label "deckhand.test.recipe=$recipe" -t "$IMG_POSTGRES" "$tmp" \
    >"$LOG_DIR/build-postgres.log" 2>&1 ||
    { cat "$LOG_DIR/build-postgres.log" >&2; die "docker build of $IMG_POSTGRES failed"; }
  drop_replaced_image "$IMG_POSTGRES" "$old"
}

# ------------------------------------------------------------------ pebble --

# A CA and a leaf for localhost/127.0.0.1, made once: Pebble's ACME endpoint
# serves HTTPS with the leaf, clients trust ca.pem. Remade when missing or
# within 30 days of expiry.
ensure_pebble_certs() {
  mkdir -p "$PEBBLE_DIR"
  if [[ -s $PEBBLE_DIR/ca.pem && -s $PEBBLE_DIR/localhost.pem && -s $PEBBLE_DIR/localhost.key ]] &&
    openssl x509 -checkend $((30 * 86400)) -noout -in "$PEBBLE_DIR/localhost.pem" >/dev/null 2>&1; then
    :
  else
    log "generating Pebble TLS certificates in $PEBBLE_DIR"
    local tmp
    new_tmp_dir tmp "$PEBBLE_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=deckhand test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$tmp/localhost.key" -out "$tmp/localhost.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$tmp/leaf.ext"
    openssl x509 -req -in "$tmp/localhost.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
      -CAcreateserial -days 825 -extfile "$tmp/leaf.ext" -out "$tmp/localhost.pem" 2>/dev/null
    chmod 600 "$tmp"/*.key
    mv "$tmp/ca.key" "$tmp/ca.pem" "$tmp/localhost.key" "$tmp/localhost.pem" "$PEBBLE_DIR/"
  fi
  local config="$PEBBLE_DIR/pebble-config.json"
  # Pebble's certificates last 5 years unless DECKHAND_TEST_PEBBLE_VALIDITY
  # (seconds) says otherwise: renewal tests want short-lived ones.
  local validity=${DECKHAND_TEST_PEBBLE_VALIDITY:-}
  [[ -z $validity || $validity =~ ^[0-9]+$ ]] || die "DECKHAND_TEST_PEBBLE_VALIDITY must be a number of seconds"
  # 2.6 reads certificateValidityPeriod, later versions the default profile's.
  local validity_json=""
  [[ -z $validity ]] || validity_json=",
    \"certificateValidityPeriod\": $validity,
    \"profiles\": { \"default\": { \"description\": \"The default profile\", \"validityPeriod\": $validity } }"
  local want
  want=$(
    cat <<EOF
{
  "pebble": {
    "listenAddress": "$PEBBLE_ACME_ADDR",
    "managementListenAddress": "$PEBBLE_MGMT_ADDR",
    "certificate": "$PEBBLE_DIR/localhost.pem",
    "privateKey": "$PEBBLE_DIR/localhost.key",
    "httpPort": $PEBBLE_HTTP_PORT,
    "tlsPort": $PEBBLE_TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false$validity_json
  }
}
EOF
  )
  [[ -r $config && $(cat "$config") == "$want" ]] || printf '%s\n' "$want" >"$config"
}

# What test/helpers/pebble.ts needs to run a Pebble of its own, as KEY=VALUE
# lines.
pebble_paths() {
  cat <<EOF
PEBBLE=$PEBBLE
PEBBLE_WITHOUT_ARI=/usr/bin/pebble
PEBBLE_WITHOUT_ARI_VERSION=$(dpkg-query -W -f '${Version}' pebble 2>/dev/null || echo unknown)
CHALLTESTSRV=$CHALLTESTSRV
CHALLTESTSRV_DNS_FLAG=$(challtestsrv_dns_flag)
PEBBLE_VERSION=$(pebble_version)
TLS_CA=$PEBBLE_DIR/ca.pem
TLS_CERT=$PEBBLE_DIR/localhost.pem
TLS_KEY=$PEBBLE_DIR/localhost.key
EOF
}

pebble_answers() {
  curl -fsS --max-time 2 --cacert "$PEBBLE_DIR/ca.pem" "https://$PEBBLE_ACME_ADDR/dir" >/dev/null 2>&1
}

pebble_start() {
  need_root
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  install_pebble_ari
  ensure_pebble_certs
  local cts_pid
  cts_pid=$(cat "$RUN_DIR/challtestsrv.pid" 2>/dev/null || true)
  if pid_is "$cts_pid" pebble-challtestsrv && [[ $(readlink "/proc/$cts_pid/exe") != "$CHALLTESTSRV" ]]; then
    log "pebble-challtestsrv runs another binary, restarting it"
    stop_pidfile "$RUN_DIR/challtestsrv.pid" pebble-challtestsrv
  fi
  if ! pid_is "$cts_pid" pebble-challtestsrv; then
    # A DNS server on loopback answering 127.0.0.1 for every name, so Pebble
    # validates against this machine and nothing else. Its HTTP-01,
    # HTTPS-01, TLS-ALPN-01 and DNS-over-HTTPS listeners are off (empty
    # address); no AAAA answers, so validation never tries ::1.
    spawn_detached "$LOG_DIR/challtestsrv.log" "$RUN_DIR/challtestsrv.pid" \
      "$CHALLTESTSRV" "$(challtestsrv_dns_flag)" "$CHALLTESTSRV_DNS_ADDR" -http01 "" -https01 "" -tlsalpn01 "" -doh "" \
      -management "$CHALLTESTSRV_MGMT_ADDR" -defaultIPv4 127.0.0.1 -defaultIPv6 ""
  fi
  # A pebble started with another config (say, another validity), other
  # certificates or another binary (bookworm's, before) restarts.
  local config_sum
  config_sum=$( (cat "$PEBBLE_DIR/pebble-config.json" "$PEBBLE_DIR/localhost.pem" && pebble_version) | sha256sum | cut -c1-16)
  if pid_is "$(cat "$RUN_DIR/pebble.pid" 2>/dev/null || true)" pebble &&
    [[ $(cat "$RUN_DIR/pebble.config-sum" 2>/dev/null || true) != "$config_sum" ]]; then
    log "pebble config or certificates changed, restarting pebble"
    stop_pidfile "$RUN_DIR/pebble.pid" pebble
  fi
  if ! pebble_answers; then
    echo "$config_sum" >"$RUN_DIR/pebble.config-sum"
    # VA_NOSLEEP: validate at once instead of after up to 15 s (the caller
    # may override it). PEBBLE_WFE_NONCEREJECT stays at Pebble's default (5%
    # of nonces rejected, which clients must retry) unless the caller sets it.
    # AUTHZREUSE 0: every order validates (Pebble reuses a valid
    # authorization half the time by default, so a timed issuance would
    # measure validation only now and then).
    PEBBLE_VA_NOSLEEP=${PEBBLE_VA_NOSLEEP:-1} PEBBLE_AUTHZREUSE=${PEBBLE_AUTHZREUSE:-0} \
      spawn_detached "$LOG_DIR/pebble.log" "$RUN_DIR/pebble.pid" \
      "$PEBBLE" -config "$PEBBLE_DIR/pebble-config.json" -dnsserver "$CHALLTESTSRV_DNS_ADDR"
    local i
    for ((i = 0; i < 100; i++)); do
      pebble_answers && break
      pid_is "$(cat "$RUN_DIR/pebble.pid")" pebble || die "pebble exited; see $LOG_DIR/pebble.log"
      sleep 0.1
    done
    pebble_answers || die "pebble does not answer on https://$PEBBLE_ACME_ADDR/dir; see $LOG_DIR/pebble.log"
  fi
  # Pebble makes a new issuing root at every start: fetch the current one.
  curl -fsS --cacert "$PEBBLE_DIR/ca.pem" "https://$PEBBLE_MGMT_ADDR/roots/0" >"$RUN_DIR/pebble-issuer-root.pem"
  cat <<EOF
pebble $(pebble_version) ($PEBBLE)
        ACME directory  https://$PEBBLE_ACME_ADDR/dir
        TLS CA (trust it, e.g. NODE_EXTRA_CA_CERTS)  $PEBBLE_DIR/ca.pem
        issuing root of this run  $RUN_DIR/pebble-issuer-root.pem (https://$PEBBLE_MGMT_ADDR/roots/0)
        HTTP-01 validation to port $PEBBLE_HTTP_PORT; DNS $CHALLTESTSRV_DNS_ADDR (every name -> 127.0.0.1)
        logs $LOG_DIR/pebble.log, $LOG_DIR/challtestsrv.log
EOF
}

pebble_stop() {
  stop_pidfile "$RUN_DIR/pebble.pid" pebble
  stop_pidfile "$RUN_DIR/challtestsrv.pid" pebble-challtestsrv
  rm -f "$RUN_DIR/pebble-issuer-root.pem" "$RUN_DIR/pebble.config-sum"
}

# ------------------------------------------------------------- subcommands --

REBUILD=0

cmd_up() {
  local arg
  for arg in "$@"; do
    case $arg in
      --rebuild) REBUILD=1 ;;
      *) die "up: unknown option $arg" ;;
    esac
  done
  need_root
  mkdir -p "$CACHE_DIR" "$LOG_DIR" "$RUN_DIR"
  take_lock
  local t0=$SECONDS
  install_packages
  install_compose_v2
  install_pebble_ari
  ensure_agent_users
  ensure_dockerd
  build_busybox_image
  build_web_image latest 1
  build_postgres_image
  ensure_pebble_certs

  # Final verdict: everything the suite relies on must answer.
  local ok=1 server v1 v2 img
  server=$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null) || { ok=0; server=FAILED; }
  v1=$(compose_v1_version)
  v2=$(compose_v2_version)
  [[ $v1 != missing && $v2 != missing ]] || ok=0
  echo "deckhand test environment ($((SECONDS - t0)) s)"
  echo "  docker engine   $server, storage $(docker info --format '{{.Driver}}' 2>/dev/null || echo '?')"
  echo "  compose v1      $v1 (docker-compose)"
  echo "  compose v2      $v2 (docker compose)"
  echo "  agent user      $(describe_user "$AGENT_USER")"
  echo "  without docker  $(describe_user "$AGENT_USER_NODOCKER")"
  for img in "$IMG_BUSYBOX" "$IMG_WEB" "$IMG_POSTGRES"; do
    if image_exists "$img"; then
      printf '  %-30s %s\n' "$img" "$(docker image inspect --format '{{.Id}}' "$img" | cut -c1-19)"
    else
      printf '  %-30s MISSING\n' "$img"
      ok=0
    fi
  done
  local pv
  pv=$(pebble_version)
  [[ $pv != missing ]] || ok=0
  echo "  pebble          $pv ($PEBBLE_SUITE, ARI) in $PEBBLE_BIN_DIR"
  echo "                  not started (scripts/test-env.sh pebble-start); CA $PEBBLE_DIR/ca.pem"
  # Benchmark references only (test/bench/cert-issue.ts); not needed by the tests.
  echo "  certbot         $(dpkg-query -W -f='${Version}' certbot 2>/dev/null || echo missing) (benchmark reference)"
  echo "  lego            $(dpkg-query -W -f='${Version}' lego 2>/dev/null || echo missing) (benchmark reference)"
  echo "  logs            $LOG_DIR"
  [[ $ok -eq 1 ]] || die "test environment incomplete"
}

# Names of compose projects (from container labels) starting with dhtest.
dhtest_projects() {
  docker ps -a --format '{{.Label "com.docker.compose.project"}}' 2>/dev/null | grep '^dhtest' | sort -u || true
}

cmd_down() {
  local all=0 arg
  for arg in "$@"; do
    case $arg in
      --all) all=1 ;;
      *) die "down: unknown option $arg" ;;
    esac
  done
  need_root
  mkdir -p "$RUN_DIR"
  take_lock
  pebble_stop
  if docker_ok; then
    local ids project
    # By label, not by name: compose v1 and v2 name containers differently.
    ids=$(docker ps -aq --filter label=deckhand.test=1)
    for project in $(dhtest_projects); do
      ids+=" $(docker ps -aq --filter "label=com.docker.compose.project=$project")"
    done
    ids=$(echo "$ids" | xargs -n1 2>/dev/null | sort -u | xargs)
    if [[ -n $ids ]]; then
      log "removing containers: $ids"
      # shellcheck disable=SC2086
      docker rm -f -v $ids >/dev/null || log "some containers could not be removed"
    fi
    # Image tags left by test deploys and builds (tags only: shared layers stay).
    local tags
    tags=$(docker images --format '{{.Repository}}:{{.Tag}}' --filter 'reference=deckhand-keep/dhtest-*' --filter 'reference=dhtest-*' 2>/dev/null | grep -v '<none>' || true)
    if [[ -n $tags ]]; then
      log "removing $(wc -w <<<"$tags") test image tags"
      # shellcheck disable=SC2086
      docker image rm --no-prune $tags >/dev/null 2>&1 || log "some test image tags could not be removed (in use?)"
    fi
    local nets vols
    nets=$( (
      docker network ls -q --filter label=deckhand.test=1
      docker network ls --format '{{.ID}} {{.Label "com.docker.compose.project"}}' | awk '$2 ~ /^dhtest/ { print $1 }'
    ) | sort -u)
    if [[ -n $nets ]]; then
      log "removing networks: ${nets//$'\n'/ }"
      # shellcheck disable=SC2086
      docker network rm $nets >/dev/null || log "some networks could not be removed (still in use?)"
    fi
    vols=$( (
      docker volume ls -q --filter label=deckhand.test=1
      docker volume ls --format '{{.Name}} {{.Label "com.docker.compose.project"}}' | awk '$2 ~ /^dhtest/ { print $1 }'
    ) | sort -u)
    if [[ -n $vols ]]; then
      log "removing volumes: ${vols//$'\n'/ }"
      # shellcheck disable=SC2086
      docker volume rm $vols >/dev/null || log "some volumes could not be removed (still in use?)"
    fi
  fi
  [[ $all -eq 1 ]] && stop_dockerd
  return 0
}

cmd_status() {
  local p
  echo "packages:"
  for p in "${APT_PACKAGES[@]}"; do
    if pkg_installed "$p"; then
      printf '  %-26s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")"
    else
      printf '  %-26s missing\n' "$p"
    fi
  done
  echo "docker:"
  if docker_ok; then
    echo "  engine    $(docker version --format '{{.Server.Version}}') (client $(docker version --format '{{.Client.Version}}'), storage $(docker info --format '{{.Driver}}'))"
    echo "  compose   v1 $(compose_v1_version) (docker-compose), v2 $(compose_v2_version) (docker compose)"
    echo "  images:"
    docker image ls --format '{{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' 'deckhand-test/*' | sed 's/^/    /'
    echo "  test containers (label deckhand.test=1, projects dhtest*):"
    {
      docker ps -a --filter label=deckhand.test=1 --format '{{.Names}}  {{.Status}}'
      for p in $(dhtest_projects); do
        docker ps -a --filter "label=com.docker.compose.project=$p" --format '{{.Names}}  {{.Status}}'
      done
    } | sort -u | sed 's/^/    /'
    echo "  dockerd log: $LOG_DIR/dockerd.log"
  else
    echo "  engine    not answering"
  fi
  echo "users:"
  for p in "$AGENT_USER" "$AGENT_USER_NODOCKER"; do
    printf '  %-18s %s\n' "$p" "$(describe_user "$p")"
  done
  echo "pebble:"
  echo "  version   $(pebble_version) ($PEBBLE_BIN_DIR)"
  if pebble_answers; then
    echo "  running at https://$PEBBLE_ACME_ADDR/dir (CA $PEBBLE_DIR/ca.pem)"
  else
    echo "  not running"
  fi
  echo "cache ($CACHE_DIR):"
  if compgen -G "$CACHE_DIR/*" >/dev/null; then
    du -sh "$CACHE_DIR"/* | sed 's/^/  /'
  else
    echo "  empty"
  fi
}

cmd_web_image() {
  [[ $# -ge 1 ]] || die "usage: web-image VERSION [TAG]"
  need_root
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  docker_ok || die "docker does not answer; run scripts/test-env.sh up"
  image_exists "$IMG_BUSYBOX" || die "$IMG_BUSYBOX missing; run scripts/test-env.sh up"
  build_web_image "${2:-$1}" "$1"
  echo "deckhand-test/web:${2:-$1}"
}

# Brings up test/fixtures/stacks/basic as project dhtest-smoke, waits for both
# services to be healthy, checks them, and removes everything again.
cmd_smoke() {
  need_root
  local project=dhtest-smoke file="$REPO_ROOT/test/fixtures/stacks/basic/compose.yaml"
  local web_port=${WEB_PORT:-18080} db_port=${DB_PORT:-15432} i c status all
  export WEB_PORT=$web_port DB_PORT=$db_port
  # shellcheck disable=SC2064  # expand now: the locals are gone at exit
  trap "docker-compose -p '$project' -f '$file' down -v >/dev/null 2>&1 || true; cleanup" EXIT
  docker-compose -p "$project" -f "$file" up -d
  for ((i = 0; i < 120; i++)); do
    all=healthy
    for c in $(docker ps -aq --filter "label=com.docker.compose.project=$project"); do
      status=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c")
      [[ $status == healthy ]] || all=$status
    done
    [[ $all == healthy ]] && break
    sleep 0.5
  done
  docker ps -a --filter "label=com.docker.compose.project=$project" --format '  {{.Names}}  {{.Status}}'
  [[ $all == healthy ]] || die "smoke: services not healthy (last status: $all)"
  curl -fsS "http://127.0.0.1:$web_port/version" | sed 's/^/  web version: /'
  PGPASSWORD=app psql -h 127.0.0.1 -p "$db_port" -U app -d app -Atc 'select version()' | sed 's/^/  db: /'
  echo "smoke: ok"
}

usage() {
  # The comment block at the top of this file.
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    pebble-start) pebble_start ;;
    pebble-stop) need_root; pebble_stop ;;
    pebble-certs) need_root; mkdir -p "$LOG_DIR"; install_pebble_ari; ensure_pebble_certs; pebble_paths ;;
    web-image) cmd_web_image "$@" ;;
    server-image) need_root; mkdir -p "$LOG_DIR" "$CACHE_DIR"; docker_ok || die "dockerd is not running (scripts/test-env.sh up)"; ensure_server_image ;;
    smoke) cmd_smoke ;;
    engine-restart) need_root; mkdir -p "$RUN_DIR"; take_lock; stop_dockerd; ensure_dockerd ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
