#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs and starts what the
# tests need (Docker engine, compose v1 and v2, PostgreSQL, Pebble, test
# images, the agent's system users) through scripts/test-env.sh, installs the
# npm dependencies from the lockfile, builds, type-checks, then runs unit and
# integration tests with Node's runner.
#
#   scripts/test.sh            everything
#   scripts/test.sh unit       unit tests only (no Docker needed)
#
# The integration files that run stacks and deploys (test/matrix/files) run
# twice, under compose v1 and v2, in suites titled "FILE (compose vN)"; the
# other integration files run once, under DECKHAND_TEST_COMPOSE (default v2);
# those in test/matrix/side-by-side three at a time in one process, the rest
# one at a time. One `node --test` run, so its closing summary counts every
# test.
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."

usage() {
  # The comment block at the top of this file.
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$SELF"
}

what=${1:-all}
if [[ $# -gt 1 ]]; then
  usage >&2
  exit 2
fi
case $what in
  all | unit) ;;
  -h | --help | help) usage; exit 0 ;;
  *)
    echo "scripts/test.sh: unknown argument: $what" >&2
    usage >&2
    exit 2
    ;;
esac

source scripts/lib/node-deps.sh

files=(test/unit/*.test.ts)
if [[ $what == all ]]; then
  echo "== test environment"
  bash scripts/test-env.sh up
  mapfile -t matrix < <(grep -v -e '^#' -e '^[[:space:]]*$' test/matrix/files)
  mapfile -t paired < <(grep -v -e '^#' -e '^[[:space:]]*$' test/matrix/side-by-side)
  for f in test/integration/*.test.ts; do
    [[ " ${matrix[*]} ${paired[*]} " == *" $f "* ]] || files+=("$f")
  done
  files+=(test/matrix/compose-v1.test.ts test/matrix/compose-v2.test.ts test/matrix/side-by-side.test.ts)
  echo "== compose: ${matrix[*]##*/} under v1 and v2; the other files under ${DECKHAND_TEST_COMPOSE:-v2}"
  echo "== three at a time: ${paired[*]##*/}"
fi

ensure_node_modules
build_dist
echo "== type-check"
npx --no-install tsc -p tsconfig.json

echo "== tests"
# One file at a time: integration tests run real stacks on a 2-core machine,
# and their timings should not depend on what else runs.
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
