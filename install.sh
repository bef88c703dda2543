#!/usr/bin/env bash
# deckhand installer: sets up deckhand-agent on a Debian or Ubuntu server.
#
#   curl -fsSL https://<release>/install.sh | sudo bash -s -- [options]
#   sudo ./install.sh --from deckhand-VERSION-linux-x64.tar.gz [options]
#
# Options:
#   --from TARBALL|DIR  install from a release tarball, an unpacked release,
#                       or a checkout (built with scripts/release.sh first)
#   --version V         switch to version V, already installed here (rollback)
#   --config FILE       install FILE as /etc/deckhand/agent.yaml (the old one
#                       is kept beside it as agent.yaml.bak-TIME)
#   --stack DIR         the compose project to supervise, written into the
#                       starter agent.yaml, made writable for deploys
#   --no-docker         do not install Docker when it is missing
#   --no-start          install and enable, but do not start the agent
#   --uninstall         stop and remove the program; keep /etc/deckhand and data
#   --purge             with --uninstall: remove config, data and the user too
#
# Every step is idempotent: a second run upgrades in place and keeps config,
# data and tokens. Versions live in /opt/deckhand/VERSION with a `current`
# link switched in one rename; the previous version stays for --version.
set -euo pipefail

PREFIX=/opt/deckhand
ETC=/etc/deckhand
CONFIG=$ETC/agent.yaml
DATA_DEFAULT=/var/lib/deckhand
UNIT_NAME=deckhand-agent.service
UNIT=/etc/systemd/system/$UNIT_NAME
DROPIN_DIR=/etc/systemd/system/$UNIT_NAME.d
AGENT_USER=deckhand
# Where `curl | bash` fetches release tarballs from; set when the release is
# published (scripts/release.sh --base-url), empty in a checkout.
RELEASE_BASE=${DECKHAND_RELEASE_BASE:-}
HEALTH_WAIT_S=60

FROM=
WANT_VERSION=
CONFIG_FILE=
STACK_DIR=
NO_DOCKER=no
NO_START=no
UNINSTALL=no
PURGE=no

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --from) FROM=${2:?--from needs a tarball or a directory}; shift 2 ;;
    --version) WANT_VERSION=${2:?--version needs a version}; shift 2 ;;
    --config) CONFIG_FILE=${2:?--config needs a file}; shift 2 ;;
    --stack) STACK_DIR=${2:?--stack needs a directory}; shift 2 ;;
    --no-docker) NO_DOCKER=yes; shift ;;
    --no-start) NO_START=yes; shift ;;
    --uninstall) UNINSTALL=yes; shift ;;
    --purge) UNINSTALL=yes; PURGE=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# --- the box ---------------------------------------------------------------------
check_box() {
  [[ $EUID -eq 0 ]] || die "must run as root: sudo bash install.sh ..."
  [[ -r /etc/os-release ]] || die "unsupported OS: no /etc/os-release (deckhand supports Debian 11+ and Ubuntu 20.04+)"
  local id version like
  # shellcheck disable=SC1091  # the box's own file
  id=$(. /etc/os-release && echo "${ID:-}")
  # shellcheck disable=SC1091
  version=$(. /etc/os-release && echo "${VERSION_ID:-}")
  # shellcheck disable=SC1091
  like=$(. /etc/os-release && echo "${ID_LIKE:-}")
  case $id in
    debian) [[ ${version%%.*} =~ ^[0-9]+$ && ${version%%.*} -ge 11 ]] || die "unsupported OS: Debian ${version:-testing/unstable} (deckhand supports Debian 11 and later)" ;;
    ubuntu) [[ ${version%%.*} =~ ^[0-9]+$ && ${version%%.*} -ge 20 ]] || die "unsupported OS: Ubuntu $version (deckhand supports Ubuntu 20.04 and later)" ;;
    *) die "unsupported OS: ${id:-unknown}${like:+ (like $like)} (deckhand supports Debian 11+ and Ubuntu 20.04+)" ;;
  esac
  case $(uname -m) in
    x86_64) ARCH=x64 ;;
    aarch64) ARCH=arm64 ;;
    *) die "unsupported architecture: $(uname -m) (deckhand ships for x86_64 and aarch64)" ;;
  esac
  [[ -d /run/systemd/system ]] || die "systemd is not running as init here; deckhand-agent runs as a systemd service"
  OS_NAME="$id $version"
}

# --- uninstall -------------------------------------------------------------------
uninstall() {
  step "stopping and removing deckhand-agent"
  systemctl disable --now "$UNIT_NAME" >/dev/null 2>&1 || true
  rm -f "$UNIT"
  rm -rf "$DROPIN_DIR"
  systemctl daemon-reload
  rm -f /usr/local/bin/deckhand /usr/local/bin/deckhand-agent
  rm -rf "$PREFIX"
  note "removed $PREFIX, the unit and /usr/local/bin/deckhand{,-agent}"
  if [[ $PURGE == yes ]]; then
    local data
    data=$(data_dir)
    rm -rf "$ETC" "$data"
    if id "$AGENT_USER" >/dev/null 2>&1; then userdel "$AGENT_USER" >/dev/null 2>&1 || true; fi
    if getent group "$AGENT_USER" >/dev/null; then groupdel "$AGENT_USER" >/dev/null 2>&1 || true; fi
    note "purged $ETC, $data and the user $AGENT_USER"
  else
    note "kept $ETC (config, API certificate) and $(data_dir) (database, backups, certificates)"
  fi
}

# dataDir from the config, else the default.
data_dir() {
  local d=
  [[ -f $CONFIG ]] && d=$(sed -n 's/^dataDir:[[:space:]]*//p' "$CONFIG" | head -1 | sed 's/[[:space:]]*#.*//; s/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/')
  printf '%s\n' "${d:-$DATA_DEFAULT}"
}

# Port of a `listen:` line under SECTION in the config, else DEFAULT.
config_port() {
  local section=$1 default=$2 port=
  [[ -f $CONFIG ]] && port=$(awk -v s="$section:" '
    $0 ~ "^"s { inside = 1; next }
    /^[^[:space:]#]/ { inside = 0 }
    inside && $1 == "listen:" { n = split($2, a, ":"); print a[n]; exit }' "$CONFIG" | tr -dc '0-9')
  printf '%s\n' "${port:-$default}"
}

# --- docker ----------------------------------------------------------------------
ensure_docker() {
  if command -v docker >/dev/null 2>&1; then
    note "Docker present: $(docker --version 2>/dev/null | head -1)"
  elif [[ $NO_DOCKER == yes ]]; then
    note "Docker missing; --no-docker: not installing it (the stack duty needs it)"
  else
    step "installing Docker from $OS_NAME's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    local compose=docker-compose
    apt-cache show docker-compose-v2 >/dev/null 2>&1 && compose=docker-compose-v2
    apt-get install -y -qq docker.io "$compose" >/dev/null
    systemctl enable --now docker >/dev/null 2>&1 || true
    note "installed docker.io and $compose"
  fi
  # The unit's SupplementaryGroups=docker needs the group even before Docker
  # is there (--no-docker); Docker's package adopts it when installed later.
  getent group docker >/dev/null || groupadd --system docker
}

# --- the release -----------------------------------------------------------------
# Sets SRC to an unpacked release directory (with VERSION and node/bin/node).
find_release() {
  local tmp
  if [[ -z $FROM ]]; then
    [[ -n $RELEASE_BASE ]] || die "no release to install: pass --from TARBALL (this install.sh has no release address built in)"
    command -v curl >/dev/null || die "curl is needed to download the release"
    local v=${WANT_VERSION:-latest}
    tmp=$(mktemp -d)
    TMPS+=("$tmp")
    step "downloading deckhand $v for linux-$ARCH"
    local base="$RELEASE_BASE/$v/deckhand-linux-$ARCH.tar.gz"
    curl -fsSL "$base" -o "$tmp/release.tar.gz" || die "cannot download $base"
    curl -fsSL "$base.sha256" -o "$tmp/release.tar.gz.sha256" || die "cannot download $base.sha256"
    (cd "$tmp" && sed "s/ .*/  release.tar.gz/" release.tar.gz.sha256 | sha256sum -c --quiet -) || die "the downloaded release does not match its SHA-256"
    FROM=$tmp/release.tar.gz
  fi
  if [[ -f $FROM ]]; then
    if [[ -f $FROM.sha256 ]]; then
      (cd "$(dirname "$FROM")" && sha256sum -c --quiet "$(basename "$FROM").sha256") || die "$FROM does not match $FROM.sha256"
      note "checked $(basename "$FROM") against its .sha256"
    fi
    tmp=$(mktemp -d)
    TMPS+=("$tmp")
    tar -xzf "$FROM" -C "$tmp" || die "cannot unpack $FROM"
    SRC=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'deckhand-*' | head -1)
  elif [[ -d $FROM && -f $FROM/VERSION && -x $FROM/node/bin/node ]]; then
    SRC=$(cd "$FROM" && pwd)
  elif [[ -d $FROM && -x $FROM/scripts/release.sh ]]; then
    step "building a release from the checkout $FROM"
    tmp=$(mktemp -d)
    TMPS+=("$tmp")
    (cd "$FROM" && bash scripts/release.sh --arch "$ARCH" --out "$tmp") || die "scripts/release.sh failed in $FROM"
    FROM=$(ls "$tmp"/deckhand-*-linux-"$ARCH".tar.gz)
    find_release
    return
  else
    die "--from $FROM is neither a release tarball, an unpacked release, nor a checkout"
  fi
  [[ -n ${SRC:-} && -f $SRC/VERSION && -x $SRC/node/bin/node ]] || die "$FROM holds no deckhand release"
  local rel_arch
  rel_arch=$(sed -n 's/.*"arch":"\([^"]*\)".*/\1/p' "$SRC/VERSION")
  [[ $rel_arch == "$ARCH" ]] || die "$FROM is a release for linux-$rel_arch; this machine is linux-$ARCH"
  VERSION=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' "$SRC/VERSION")
  [[ $VERSION =~ ^[0-9A-Za-z.+-]+$ ]] || die "$FROM has no readable version"
}

current_version() { basename "$(readlink "$PREFIX/current" 2>/dev/null || echo none)"; }

# Places $SRC as $PREFIX/$VERSION (a same version already there is replaced
# whole), then switches `current` to it in one rename.
install_release() {
  mkdir -p "$PREFIX"
  chmod 0755 "$PREFIX"
  local dest=$PREFIX/$VERSION
  if [[ $SRC != "$dest" ]]; then
    rm -rf "$dest.new"
    cp -a "$SRC" "$dest.new"
    chown -R root:root "$dest.new"
    chmod -R go-w "$dest.new"
    if [[ -d $dest ]]; then mv "$dest" "$dest.old"; fi
    mv "$dest.new" "$dest"
    rm -rf "$dest.old"
  fi
  switch_to "$VERSION"
}

switch_to() {
  local v=$1 before
  before=$(current_version)
  ln -sfn "$v" "$PREFIX/current.new"
  mv -T "$PREFIX/current.new" "$PREFIX/current"
  if [[ $before != none && $before != "$v" ]]; then printf '%s\n' "$before" >"$PREFIX/previous"; fi
  ln -sfn "$PREFIX/current/bin/deckhand" /usr/local/bin/deckhand
  ln -sfn "$PREFIX/current/bin/deckhand-agent" /usr/local/bin/deckhand-agent
  # Keep the version in use and the one before it; older ones go.
  local keep_prev
  keep_prev=$(cat "$PREFIX/previous" 2>/dev/null || true)
  for d in "$PREFIX"/*/; do
    d=$(basename "$d")
    if [[ $d != "$v" && $d != "$keep_prev" && $d != current && -f $PREFIX/$d/VERSION ]]; then rm -rf "${PREFIX:?}/$d"; fi
  done
  return 0
}

# --- user, directories, certificate, config, token ---------------------------------------
ensure_user() {
  if ! getent group "$AGENT_USER" >/dev/null; then groupadd --system "$AGENT_USER"; fi
  if ! id "$AGENT_USER" >/dev/null 2>&1; then
    useradd --system --gid "$AGENT_USER" --home-dir "$DATA_DEFAULT" --no-create-home --shell /usr/sbin/nologin "$AGENT_USER"
    note "created system user $AGENT_USER"
  fi
  if getent group docker >/dev/null && ! id -nG "$AGENT_USER" | tr ' ' '\n' | grep -qx docker; then
    usermod -aG docker "$AGENT_USER"
    note "added $AGENT_USER to group docker"
  fi
}

as_agent() { setpriv --reuid="$AGENT_USER" --regid="$AGENT_USER" --init-groups -- env HOME="$DATA_DEFAULT" "$@"; }

ensure_dirs() {
  install -d -m 0750 -o root -g "$AGENT_USER" "$ETC"
  local data
  data=$(data_dir)
  install -d -m 0750 -o "$AGENT_USER" -g "$AGENT_USER" "$data"
}

ensure_api_cert() {
  [[ -f $ETC/api.crt && -f $ETC/api.key ]] && return
  step "making a self-signed API certificate"
  local host ip san
  host=$(hostname -f 2>/dev/null || hostname)
  ip=$(primary_ip)
  san="DNS:$host,DNS:localhost,IP:127.0.0.1${ip:+,IP:$ip}"
  (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=$host" -addext "subjectAltName=$san" -keyout "$ETC/api.key" -out "$ETC/api.crt" >/dev/null 2>&1) || die "openssl could not make the API certificate"
  chown "$AGENT_USER:$AGENT_USER" "$ETC/api.key"
  chmod 0600 "$ETC/api.key"
  chown root:"$AGENT_USER" "$ETC/api.crt"
  chmod 0644 "$ETC/api.crt"
  note "$ETC/api.crt ($san), key 0600"
}

primary_ip() { hostname -I 2>/dev/null | awk '{print $1}'; }

# The compose project name of DIR, as compose derives it: `name:` in the
# compose file, else COMPOSE_PROJECT_NAME in .env, else the directory's name.
compose_project() {
  local dir=$1 file name=
  for file in compose.yaml compose.yml docker-compose.yml docker-compose.yaml; do
    [[ -f $dir/$file ]] || continue
    name=$(sed -n 's/^name:[[:space:]]*["'"'"']\{0,1\}\([A-Za-z0-9_-]*\).*/\1/p' "$dir/$file" | head -1)
    break
  done
  [[ -z $name && -f $dir/.env ]] && name=$(sed -n 's/^COMPOSE_PROJECT_NAME=["'"'"']\{0,1\}\([A-Za-z0-9_-]*\).*/\1/p' "$dir/.env" | head -1)
  [[ -z $name ]] && name=$(basename "$dir" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')
  printf '%s\n' "$name"
}

ensure_config() {
  if [[ -n $CONFIG_FILE ]]; then
    [[ -f $CONFIG_FILE ]] || die "--config $CONFIG_FILE does not exist"
    if [[ -f $CONFIG ]] && ! cmp -s "$CONFIG_FILE" "$CONFIG"; then
      cp -p "$CONFIG" "$CONFIG.bak-$(date -u +%Y%m%dT%H%M%SZ)"
      note "kept the previous config as $CONFIG.bak-*"
    fi
    install -m 0640 -o root -g "$AGENT_USER" "$CONFIG_FILE" "$CONFIG"
    note "installed $CONFIG_FILE as $CONFIG"
    return
  fi
  if [[ -f $CONFIG ]]; then
    note "keeping $CONFIG"
    if [[ -n $STACK_DIR ]]; then note "--stack ignored: $CONFIG exists (edit its stack: section)"; fi
    return 0
  fi
  step "writing a starter $CONFIG"
  local stack=
  if [[ -n $STACK_DIR ]]; then
    stack=$(printf 'stack:\n  project: %s\n  dir: %s\n' "$(compose_project "$STACK_DIR")" "$STACK_DIR")
  fi
  local tmp
  tmp=$(mktemp "$ETC/.agent.yaml.XXXXXX")
  cat >"$tmp" <<YAML
# deckhand-agent configuration (written by install.sh; edit freely, then:
#   deckhand-agent check-config && sudo systemctl restart deckhand-agent)
host:
  name: $(hostname -s 2>/dev/null || hostname)
dataDir: $DATA_DEFAULT

health:
  listen: 127.0.0.1:7070

api:
  listen: 0.0.0.0:7443
  tls:
    cert: $ETC/api.crt
    key: $ETC/api.key

${stack:-# stack:
#   project: myapp
#   dir: /srv/myapp}

metrics:
  interval: 10s
YAML
  chown root:"$AGENT_USER" "$tmp"
  chmod 0640 "$tmp"
  mv "$tmp" "$CONFIG"
  note "$CONFIG${STACK_DIR:+ (stack $(compose_project "$STACK_DIR") in $STACK_DIR)}"
}

# The stack directory, for deploys: the agent writes .env, runs git, reads
# the compose files. Group ownership and group write, never world-writable.
prepare_stack() {
  local dir
  dir=$(awk '/^stack:/ { inside = 1; next } /^[^[:space:]#]/ { inside = 0 } inside && $1 == "dir:" { print $2; exit }' "$CONFIG" 2>/dev/null | tr -d "\"'")
  STACK_RW=$dir
  [[ -n $dir ]] || return 0
  [[ -d $dir ]] || { note "stack.dir $dir does not exist yet: create it, then run install.sh again"; return 0; }
  step "letting $AGENT_USER deploy in $dir"
  chgrp "$AGENT_USER" "$dir"
  chmod g+rwx,o-w "$dir"
  note "$dir: group $AGENT_USER, group-writable (the agent writes .env there)"
  if [[ -f $dir/.env ]]; then
    chgrp "$AGENT_USER" "$dir/.env"
    chmod g+rw,o-rwx "$dir/.env"
    note "$dir/.env: group $AGENT_USER, 0660 or tighter (it may hold secrets)"
  fi
  if [[ -d $dir/.git ]]; then
    chgrp -R "$AGENT_USER" "$dir/.git"
    chmod -R g+rwX,o-w "$dir/.git"
    find "$dir/.git" -type d -exec chmod g+s {} +
    git -C "$dir" config core.sharedRepository group
    # git refuses a repository another user owns unless told it is safe.
    as_agent git config --global --get-all safe.directory 2>/dev/null | grep -qxF "$dir" ||
      as_agent git config --global --add safe.directory "$dir"
    note "$dir/.git: group-writable, shared; safe.directory for $AGENT_USER"
  fi
}

write_dropin() {
  mkdir -p "$DROPIN_DIR"
  local paths=() extra
  [[ -n ${STACK_RW:-} && -d $STACK_RW ]] && paths+=("$STACK_RW")
  local data
  data=$(data_dir)
  [[ $data != "$DATA_DEFAULT" ]] && paths+=("$data")
  # copyTo, webroot and backup dirs outside the data directory.
  while read -r extra; do
    if [[ -n $extra && -d $extra ]]; then paths+=("$extra"); fi
  done < <(grep -E '^[[:space:]]*(copyTo|webroot|dir):' "$CONFIG" 2>/dev/null | awk '{print $2}' | tr -d "\"'" | grep '^/' | sort -u)
  {
    echo "# Written by install.sh from $CONFIG: what the agent writes outside its data directory."
    echo "[Service]"
    if ((${#paths[@]})); then printf 'ReadWritePaths=%s\n' "$(printf '%s\n' "${paths[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//')"; fi
  } >"$DROPIN_DIR/paths.conf.new"
  mv "$DROPIN_DIR/paths.conf.new" "$DROPIN_DIR/paths.conf"
}

# A port in use by something else than a running deckhand-agent.
check_ports() {
  systemctl is-active --quiet "$UNIT_NAME" && return 0
  local port
  for port in "$(config_port health 7070)" "$(config_port api 7443)"; do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
      die "port $port is already in use ($(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\).*/\1/p' | head -1)); free it or change the listen address in $CONFIG"
    fi
  done
}

check_config() {
  local out
  if ! out=$(as_agent "$PREFIX/current/bin/deckhand-agent" check-config --config "$CONFIG" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
  printf '%s\n' "$out" | sed 's/^/    /'
}

FIRST_TOKEN=
ensure_token() {
  local list
  list=$(as_agent "$PREFIX/current/bin/deckhand-agent" token list --json --config "$CONFIG" 2>/dev/null || true)
  if [[ -n $list && $list != "[]" ]]; then
    note "tokens exist: keeping them (deckhand-agent token list)"
    return
  fi
  step "creating the first admin token"
  FIRST_TOKEN=$(as_agent "$PREFIX/current/bin/deckhand-agent" token create --name admin --scope admin --config "$CONFIG")
}

install_unit() {
  install -m 0644 "$PREFIX/current/systemd/$UNIT_NAME" "$UNIT"
  write_dropin
  systemctl daemon-reload
  systemctl enable "$UNIT_NAME" >/dev/null 2>&1
  note "$UNIT enabled"
}

wait_health() {
  local port i
  port=$(config_port health 7070)
  for ((i = 0; i < HEALTH_WAIT_S * 2; i++)); do
    if systemctl is-active --quiet "$UNIT_NAME" && (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200 ') 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}

start_agent() {
  [[ $NO_START == yes ]] && { note "--no-start: not starting it (systemctl start $UNIT_NAME)"; return 0; }
  step "starting $UNIT_NAME ($VERSION)"
  systemctl restart "$UNIT_NAME"
  if wait_health; then
    note "running; /readyz answers on 127.0.0.1:$(config_port health 7070)"
    return 0
  fi
  return 1
}

report() {
  local ip fp port name
  ip=$(primary_ip)
  port=$(config_port api 7443)
  name=$(hostname -s 2>/dev/null || hostname)
  fp=$(openssl x509 -in "$ETC/api.crt" -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//; s/://g' | tr '[:upper:]' '[:lower:]')
  echo
  echo "deckhand $VERSION is installed ($PREFIX/current, Node.js $("$PREFIX/current/node/bin/node" --version) private to it)."
  echo "  API          wss://${ip:-THIS-HOST}:$port"
  echo "  fingerprint  SHA256:$fp"
  if [[ -n $FIRST_TOKEN ]]; then
    echo "  token        $FIRST_TOKEN"
    echo "               (admin; shown once, only its hash is stored)"
    echo
    echo "On your laptop:"
    echo "  deckhand host add $name wss://${ip:-THIS-HOST}:$port --token $FIRST_TOKEN --fingerprint SHA256:$fp"
  else
    echo "  token        unchanged (make another: sudo deckhand-agent token create --name NAME --scope admin)"
    echo
    echo "On your laptop:"
    echo "  deckhand host add $name wss://${ip:-THIS-HOST}:$port --token TOKEN --fingerprint SHA256:$fp"
  fi
  echo
  echo "Logs: journalctl -u $UNIT_NAME -f    Config: $CONFIG    Data: $(data_dir)"
}

TMPS=()
cleanup() { ((${#TMPS[@]})) && rm -rf "${TMPS[@]}"; return 0; }
trap cleanup EXIT

main() {
  check_box
  if [[ $UNINSTALL == yes ]]; then
    uninstall
    return
  fi
  step "deckhand installer on $OS_NAME ($ARCH)"
  local before
  before=$(current_version)

  if [[ -n $WANT_VERSION && -z $FROM && -f $PREFIX/$WANT_VERSION/VERSION ]]; then
    VERSION=$WANT_VERSION
    step "switching to the installed version $VERSION (from $before)"
    check_ports
    switch_to "$VERSION"
  else
    if [[ -n $WANT_VERSION && -z $FROM && -z $RELEASE_BASE ]]; then
      die "version $WANT_VERSION is not installed here (installed: $(find "$PREFIX" -mindepth 2 -maxdepth 2 -name VERSION -printf "%h " 2>/dev/null | sed "s#$PREFIX/##g")); pass --from TARBALL to install it"
    fi
    find_release
    if [[ -n $WANT_VERSION && $WANT_VERSION != "$VERSION" ]]; then die "--version $WANT_VERSION: $FROM holds version $VERSION"; fi
    check_ports
    ensure_docker
    ensure_user
    step "installing deckhand $VERSION into $PREFIX/$VERSION$([[ $before != none ]] && echo " (in use: $before)")"
    install_release
  fi
  ensure_user
  ensure_dirs
  ensure_api_cert
  ensure_config
  prepare_stack
  step "checking $CONFIG as $AGENT_USER"
  if ! check_config; then
    [[ $before != none && $before != "$VERSION" ]] && switch_to "$before" && note "switched back to $before"
    die "the config does not pass check-config (above); fix $CONFIG and run install.sh again"
  fi
  ensure_token
  install_unit
  if ! start_agent; then
    journalctl -u "$UNIT_NAME" -n 30 --no-pager >&2 2>/dev/null || true
    if [[ $before != none && $before != "$VERSION" ]]; then
      switch_to "$before"
      systemctl restart "$UNIT_NAME" || true
      die "deckhand $VERSION did not become ready within ${HEALTH_WAIT_S}s; switched back to $before (journalctl -u $UNIT_NAME)"
    fi
    die "deckhand-agent did not become ready within ${HEALTH_WAIT_S}s (journalctl -u $UNIT_NAME)"
  fi
  report
}

main
