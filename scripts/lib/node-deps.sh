# Sourced by scripts/test.sh and scripts/demo.sh: npm dependencies from the
# lockfile (reinstalled only when it changed) and the bundled build.

ensure_node_modules() {
  local lock_sum
  lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [[ "$(cat node_modules/.deckhand-lock 2>/dev/null)" != "$lock_sum" ]]; then
    echo "== npm ci (native modules build from source: a minute or two)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_sum" > node_modules/.deckhand-lock
  fi
}

build_dist() {
  echo "== build"
  npm run --silent build
}
