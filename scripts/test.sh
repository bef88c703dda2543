#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs and starts what the
# tests need (Docker engine, docker-compose, PostgreSQL, Pebble, test images)
# through scripts/test-env.sh, installs the npm dependencies from the lockfile,
# builds, type-checks, then runs unit and integration tests with Node's runner.
#
#   scripts/test.sh            everything
#   scripts/test.sh unit       unit tests only (no Docker needed)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/node-deps.sh

what=${1:-all}
files=(test/unit/*.test.ts)
if [[ $what == all ]]; then
  echo "== test environment"
  bash scripts/test-env.sh up
  files+=(test/integration/*.test.ts)
fi

ensure_node_modules
build_dist
echo "== type-check"
npx --no-install tsc -p tsconfig.json

echo "== tests"
# One file at a time: integration tests run real stacks on a 2-core machine,
# and their timings should not depend on what else runs.
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
