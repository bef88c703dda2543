#!/usr/bin/env bash
# Runs deckhand for real on this machine: the example stack (a web service and
# PostgreSQL, built from local images) and the agent supervising it, in the
# foreground. Ctrl-C stops the agent; the stack keeps running.
#
#   sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/node-deps.sh

repo=$(pwd)
state=${DECKHAND_DEMO_DIR:-/var/lib/deckhand-demo}
health=${DECKHAND_DEMO_HEALTH:-127.0.0.1:7070}
api=${DECKHAND_DEMO_API:-127.0.0.1:7443}

bash scripts/test-env.sh up
ensure_node_modules
build_dist

if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
echo "== example stack (project deckhand-demo)"
"${compose[@]}" --project-name deckhand-demo --file scripts/demo-stack/compose.yaml up -d

mkdir -p "$state"
chmod 0750 "$state"
# The API's TLS pair (self-signed, as install.sh makes one), kept across runs.
if [[ ! -f $state/api.crt || ! -f $state/api.key ]]; then
  (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$state/api.key" -out "$state/api.crt" >/dev/null 2>&1)
fi
cat > "$state/agent.yaml" <<YAML
# Written by scripts/demo.sh
host:
  name: demo
dataDir: $state/data
health:
  listen: $health
api:
  listen: $api
  tls: { cert: $state/api.crt, key: $state/api.key }
stack:
  project: deckhand-demo
  dir: $repo/scripts/demo-stack
backups:
  - name: db
    schedule: "0 2 * * *"
    source: { service: db, database: demo, user: demo }
    retention: { days: 30, minKeep: 3 }
metrics:
  interval: 10s
YAML
node dist/deckhand-agent.js check-config --config "$state/agent.yaml"
# A fresh token for this run (the one of the run before is revoked): only
# its hash is stored, so it is shown here and nowhere else.
node dist/deckhand-agent.js token revoke demo --config "$state/agent.yaml" >/dev/null 2>&1 || true
token=$(node dist/deckhand-agent.js token create --name demo --scope admin --config "$state/agent.yaml" 2>/dev/null)
fingerprint=SHA256:$(openssl x509 -in "$state/api.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')

cat <<TXT

deckhand-agent is starting, supervising the stack "deckhand-demo". Look at:
  curl -s http://$health/health        overall status and every check
  curl -s http://$health/metrics       Prometheus figures (host, containers, agent)
  curl -s http://$health/readyz        200 once every duty has started
  docker kill \$(docker ps -q -f label=com.docker.compose.project=deckhand-demo -f label=com.docker.compose.service=web)
                                        and watch /health turn to fail
  backups of db                         nightly at 02:00 (host time) into $state/data/backups/db/;
                                        the check backup:db in /health says how old the last verified one is
  the agent's log                       below (JSON lines), and in $state/agent.log
  its database                          $state/data/deckhand.db (sqlite, WAL)

The CLI, from another terminal on this box (the API listens on $api):
  export DECKHAND_URL=wss://$api/v1 DECKHAND_TOKEN=$token DECKHAND_FINGERPRINT=$fingerprint
  node dist/deckhand.js status                       the host, the stack, health, open alerts
  node dist/deckhand.js ps                           services, containers, restarts
  node dist/deckhand.js logs web -f                  follow a service's logs
  node dist/deckhand.js deploy --set DEMO_WEB_PORT=18082
                                                     a deploy behind the health gate (it writes
                                                     scripts/demo-stack/.env); then: deploys, rollback
  node dist/deckhand.js backup run db                a verified backup now; then: backup list

Ctrl-C stops the agent. Remove the stack with:
  ${compose[*]} --project-name deckhand-demo --file scripts/demo-stack/compose.yaml down -v

TXT
MALLOC_ARENA_MAX=1 MALLOC_TRIM_THRESHOLD_=131072 node --max-semi-space-size=1 --max-opt=2 --initial-old-space-size=16 dist/deckhand-agent.js run --config "$state/agent.yaml" 2>&1 | tee "$state/agent.log"
