import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { ConfigError, keyPath, parseConfigText } from '../../agent/config/load.js';
import { parseDuration, parseListen } from '../../agent/config/primitives.js';

function problems(yaml: string): string[] {
  try {
    parseConfigText(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail(`expected config errors for:\n${yaml}`);
}

const STACK = 'stack: {project: app, dir: /srv/app}\n';

describe('config: bad configs name the key path and say what is wrong', () => {
  const cases: [string, string, string[]][] = [
    ['bad cron hour', 'backups:\n  - {name: db, schedule: "0 25 * * *", source: {url: "postgres://b@127.0.0.1/app", database: app}}', ['backups[0].schedule: invalid cron expression "0 25 * * *"']],
    ['unknown top-level key', 'dataDir: /var/lib/deckhand\nhealht: {listen: 127.0.0.1:7070}', ['healht: unknown key']],
    ['unknown nested key', 'stack: {project: app, dir: /srv/app, restart: {backof: 2s}}', ['stack.restart.backof: unknown key']],
    ['duration as a number', 'metrics: {interval: 10}', ['metrics.interval: expected a duration like "10s", "5m" or "24h", got 10 (a number needs a unit: "10s")']],
    ['zero as a bare number', STACK.replace('}', ', deploy: {watch: 0}}'), ['stack.deploy.watch: expected a duration like "10s", "5m" or "24h", got 0 (a number needs a unit: "0s")']],
    ['zero interval', 'metrics: {interval: 0s}', ['metrics.interval: must be from 1s to 1h']],
    ['zero retention', 'metrics: {retention: {raw: 0s, minute: 0m, hour: 0h}}', ['metrics.retention.raw: must be at least 2m', 'metrics.retention.minute: must be at least 2h', 'metrics.retention.hour: must be at least 2d']],
    ['zero healthTimeout', STACK.replace('}', ', deploy: {healthTimeout: 0s}}'), ['stack.deploy.healthTimeout: must be more than 0 (e.g. "120s")']],
    ['zero backoff', STACK.replace('}', ', restart: {backoff: 0s}}'), ['stack.restart.backoff: must be more than 0 (e.g. "2s")']],
    ['zero maxBackoff, said once', STACK.replace('}', ', restart: {maxBackoff: 0ms}}'), ['stack.restart.maxBackoff: must be more than 0 (e.g. "5m")']],
    ['zero crashloop window', STACK.replace('}', ', restart: {crashloop: {within: 0m}}}'), ['stack.restart.crashloop.within: must be more than 0 (e.g. "10m")']],
    ['zero renewBefore', 'certs: {email: ops@example.com, renewBefore: 0d}', ['certs.renewBefore: must be more than 0 (e.g. "30d")']],
    ['a sub-millisecond timeout rounds to zero', STACK.replace('}', ', deploy: {healthTimeout: 0.4ms}}'), ['stack.deploy.healthTimeout: must be more than 0 (e.g. "120s")']],
    ['malformed duration', 'metrics: {interval: 10 seconds}', ['metrics.interval: invalid duration "10 seconds" (use a number and a unit: ms, s, m, h, d)']],
    ['interval too short', 'metrics: {interval: 100ms}', ['metrics.interval: must be from 1s to 1h']],
    ['raw retention too short', 'metrics: {retention: {raw: 1m}}', ['metrics.retention.raw: must be at least 2m']],
    ['relative dataDir', 'dataDir: var/lib/deckhand', ['dataDir: must be an absolute path, got "var/lib/deckhand"']],
    ['bad listen', 'health: {listen: localhost}', ['health.listen: invalid listen address "localhost" (expected host:port, e.g. 127.0.0.1:7070)']],
    ['port out of range', 'health: {listen: "127.0.0.1:70000"}', ['health.listen: invalid listen address "127.0.0.1:70000" (expected host:port, e.g. 127.0.0.1:7070)']],
    ['webhook url scheme', 'alerts: {webhooks: [{url: "ftp://hooks.example.com/x"}]}', ['alerts.webhooks[0].url: invalid URL "ftp://hooks.example.com/x" (expected http or https)']],
    ['unknown event name', 'alerts: {webhooks: [{url: "https://hooks.example.com/x", events: [disk.lo]}]}', [
      `alerts.webhooks[0].events[0]: unknown event "disk.lo" (known: backup.failed, backup.size_drop, cert.renew_failed, cert.expiring, cert.served_mismatch, service.crashloop, service.down, disk.low, docker.unreachable, agent.started, agent.stopping, agent.error, deploy.started, deploy.succeeded, deploy.failed, deploy.rolled_back, backup.succeeded, backup.restored, backup.restore_failed, cert.renewed, service.restarted, audit, and each condition's ".resolved")`,
    ]],
    ['disk percent out of range', 'alerts: {diskLowPercent: 120}', ['alerts.diskLowPercent: must be from 1 to 100']],
    ['disk percent wrong type', 'alerts: {diskLowPercent: "ninety"}', ['alerts.diskLowPercent: expected a number from 1 to 100, got "ninety"']],
    ['project name uppercase', 'stack: {project: MyApp, dir: /srv/app}', ['stack.project: invalid compose project name "MyApp" (lowercase letters, digits, "_" and "-", starting with a letter or digit)']],
    ['compose CLI unknown', 'stack: {project: app, dir: /srv/app, compose: podman-compose}', ['stack.compose: must be "auto" | "docker compose" | "docker-compose", got "podman-compose"']],
    ['missing required key', 'stack: {project: app}', ['stack.dir: required']],
    ['maxBackoff below backoff', 'stack: {project: app, dir: /srv/app, restart: {backoff: 10s, maxBackoff: 5s}}', ['stack.restart.maxBackoff: maxBackoff must not be shorter than backoff']],
    ['compose file escaping the dir', 'stack: {project: app, dir: /srv/app, files: [../other/compose.yaml]}', ['stack.files[0]: must be a file name relative to stack.dir, got "../other/compose.yaml"']],
    ['backupFirst names no backup', STACK.replace('}', ', deploy: {backupFirst: db}}'), ['stack.deploy.backupFirst: no backup named "db" in backups']],
    ['backup with both sources', STACK + 'backups:\n  - {name: db, schedule: "0 2 * * *", source: {url: "postgres://b@127.0.0.1/app", service: postgres, database: app}}', [
      'backups[0].source: set exactly one of service (pg_dump inside a compose service) or url (pg_dump on the host)',
    ]],
    ['backup service without a stack', 'backups:\n  - {name: db, schedule: "0 2 * * *", source: {service: postgres, database: app}}', ['backups[0].source.service: backup source service "postgres" needs a stack section (or use source.url)']],
    ['duplicate backup names', 'backups:\n  - {name: db, schedule: "0 2 * * *", source: {url: "postgres://b@127.0.0.1/app", database: app}}\n  - {name: db, schedule: "0 3 * * *", source: {url: "postgres://b@127.0.0.1/app", database: app}}', ['backups[1].name: duplicate backup name "db"']],
    ['backup name with a slash', 'backups:\n  - {name: ../db, schedule: "0 2 * * *", source: {url: "postgres://b@127.0.0.1/app", database: app}}', ['backups[0].name: invalid name "../db" (letters, digits, "_", "-", "." ; at most 63)']],
    ['restore verification needs a service', 'backups:\n  - {name: db, schedule: "0 2 * * *", verify: restore, source: {url: "postgres://b@127.0.0.1/app", database: app}}', [
      'backups[0].verify: verify: restore needs source.service (the restore runs in a throwaway container of its image); use verify: read with source.url',
    ]],
    ['verify mode unknown', 'backups:\n  - {name: db, schedule: "0 2 * * *", verify: list, source: {url: "postgres://b@127.0.0.1/app", database: app}}', ['backups[0].verify: must be "read" | "restore", got "list"']],
    ['certs email', 'certs: {email: ops, certificates: [{name: main, domains: [example.com]}]}', ['certs.email: invalid email address "ops"']],
    ['dns-01 without hook', 'certs: {email: ops@example.com, challenge: {type: dns-01}}', ['certs.challenge.hook: dns-01 needs a hook program']],
    ['wildcard with http-01', 'certs: {email: ops@example.com, certificates: [{name: main, domains: ["*.example.com"]}]}', ['certs.certificates[0].domains[0]: wildcard "*.example.com" needs challenge.type dns-01']],
    ['key type unknown', 'certs: {email: ops@example.com, certificates: [{name: main, domains: [example.com], keyType: ed25519}]}', ['certs.certificates[0].keyType: must be "ecdsa-p256" | "ecdsa-p384" | "rsa-2048" | "rsa-4096", got "ed25519"']],
    ['api acme names no certificate', 'api: {listen: "0.0.0.0:7443", tls: {acme: main}}', ['api.tls.acme: no certificate named "main" in certs.certificates']],
    ['api tls neither form', 'api: {tls: {certificate: /etc/x}}', ['api.tls: expected either { cert, key } file paths or { acme: NAME } naming a managed certificate']],
    ['a list instead of a mapping', '- dataDir: /x', ['the config must be a mapping of sections (host, dataDir, health, ...), got a list']],
    ['section of the wrong type', 'metrics: fast', ['metrics: expected a mapping, got "fast"']],
    ['several problems at once', 'metrics: {interval: x}\nfoo: 1', ['foo: unknown key', 'metrics.interval: invalid duration "x" (use a number and a unit: ms, s, m, h, d)']],
  ];
  for (const [name, yaml, expected] of cases) {
    it(name, () => assert.deepEqual(problems(yaml).sort(), [...expected].sort()));
  }

  it('reports YAML syntax errors with their line', () => {
    const [first] = problems('metrics:\n  interval: [10s\n');
    assert.match(first!, /^line \d+, column \d+: /);
  });

  it('rejects a duplicate key, naming where it and the first one are', () => {
    assert.deepEqual(problems('dataDir: /a\ndataDir: /b\n'), ['line 2, column 1: duplicate key "dataDir" (first at line 1, column 1)']);
  });
});

describe('config: good configs', () => {
  it('an empty file gives the documented defaults', () => {
    const cfg = parseConfigText('');
    assert.equal(cfg.dataDir, '/var/lib/deckhand');
    assert.deepEqual(cfg.health.listen, { host: '127.0.0.1', port: 7070 });
    assert.equal(cfg.metrics.interval, 10_000);
    assert.deepEqual(cfg.metrics.retention, { raw: 86_400_000, minute: 604_800_000, hour: 7_776_000_000 });
    assert.equal(cfg.alerts.diskLowPercent, 90);
    assert.equal(cfg.host.name, hostname(), 'the machine\'s name');
    assert.equal(cfg.stack, undefined);
  });

  it('the example from the spec validates', () => {
    const cfg = parseConfigText(SPEC_EXAMPLE);
    assert.equal(cfg.stack?.deploy.backupFirst, 'db');
    assert.equal(cfg.stack?.restart.crashloop.restarts, 5);
    assert.equal(cfg.stack?.deploy.healthTimeout, 120_000);
    assert.equal(cfg.backups[0]?.retention.minKeep, 3);
    assert.equal(cfg.certs?.certificates[0]?.keyType, 'ecdsa-p256');
    assert.equal(cfg.alerts.webhooks[0]?.events?.length, 8);
  });
});

describe('config: zero turns a deploy window off', () => {
  it('watch: 0s and stableFor: 0s are valid and read as 0', () => {
    const cfg = parseConfigText(STACK.replace('}', ', deploy: {watch: 0s, stableFor: 0s}}'));
    assert.equal(cfg.stack?.deploy.watch, 0);
    assert.equal(cfg.stack?.deploy.stableFor, 0);
    assert.equal(cfg.stack?.deploy.healthTimeout, 120_000, 'the other windows keep their defaults');
  });
  it('the defaults stay as documented', () => {
    const cfg = parseConfigText(STACK);
    assert.deepEqual(
      { watch: cfg.stack?.deploy.watch, stableFor: cfg.stack?.deploy.stableFor, backoff: cfg.stack?.restart.backoff, within: cfg.stack?.restart.crashloop.within },
      { watch: 120_000, stableFor: 10_000, backoff: 2_000, within: 600_000 },
    );
  });
});

describe('config primitives', () => {
  it('parses durations', () => {
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('30d'), 2_592_000_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('10'), null);
    assert.equal(parseDuration('0s'), 0);
    assert.equal(parseDuration('0ms'), 0);
    assert.equal(parseDuration('0h0m'), 0);
    assert.equal(parseDuration('0'), null);
    assert.equal(parseDuration('-5s'), null);
  });
  it('parses listen addresses', () => {
    assert.deepEqual(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseListen('[::1]:7070'), { host: '::1', port: 7070 });
    assert.equal(parseListen('127.0.0.1:0'), null);
    assert.equal(parseListen('127.0.0.1'), null);
  });
  it('formats key paths', () => {
    assert.equal(keyPath(['backups', 0, 'schedule']), 'backups[0].schedule');
    assert.equal(keyPath([]), '');
  });
});

const SPEC_EXAMPLE = `
host:
  name: web-1
dataDir: /var/lib/deckhand
health:
  listen: 127.0.0.1:7070
api:
  listen: 0.0.0.0:7443
  tls:
    cert: /etc/deckhand/api.crt
    key: /etc/deckhand/api.key
stack:
  project: myapp
  dir: /srv/myapp
  files: [compose.yaml]
  compose: auto
  restart:
    backoff: 2s
    maxBackoff: 5m
    crashloop: { restarts: 5, within: 10m }
  deploy:
    healthTimeout: 120s
    stableFor: 10s
    probe: { url: http://127.0.0.1:8000/health, expect: 200 }
    backupFirst: db
    migrate: { service: web, command: [alembic, upgrade, head] }
    watch: 2m
certs:
  email: ops@example.com
  directory: letsencrypt
  caBundle: /path/ca.pem
  challenge:
    type: http-01
    listen: 0.0.0.0:80
  renewBefore: auto
  profile: classic
  certificates:
    - name: main
      domains: [example.com, www.example.com]
      keyType: ecdsa-p256
      copyTo: /srv/myapp/certs
      reload: { service: proxy, signal: HUP }
      probe: 127.0.0.1:443
backups:
  - name: db
    schedule: "0 2 * * *"
    source:
      service: postgres
      database: app
      user: app
    dir: /var/backups/deckhand/db
    retention: { days: 30, minKeep: 3 }
    verify: read
metrics:
  interval: 10s
  retention: { raw: 24h, minute: 7d, hour: 90d }
alerts:
  webhooks:
    - url: https://hooks.example.com/ops
      events: [backup.failed, cert.renew_failed, cert.expiring, service.crashloop,
               deploy.failed, deploy.rolled_back, disk.low, agent.started]
  diskLowPercent: 90
`;
