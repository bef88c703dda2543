// Real compose projects for the tests, written to a temp directory and run
// with the compose CLI of this run (DECKHAND_TEST_COMPOSE, see compose.ts).
// Images are the local ones that scripts/test-env.sh builds; nothing is pulled.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runChecked } from '../../agent/exec/runner.js';
import { tempDir } from './agent.js';
import { composeCli } from './compose.js';

export const WEB_IMAGE = 'deckhand-test/web:latest';
export const POSTGRES_IMAGE = 'deckhand-test/postgres:15';

export { composeCli };

/** Fails the test run early and clearly when the environment is missing. */
export function requireDocker(): void {
  try {
    execFileSync('docker', ['image', 'inspect', WEB_IMAGE], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    throw new Error(`Docker engine or test images missing: run scripts/test-env.sh up (needs ${WEB_IMAGE})`);
  }
}

export interface ServiceSpec {
  image?: string;
  environment?: Record<string, string>;
  healthcheck?: Record<string, unknown>;
  command?: string[];
}

let counter = 0;

export class TestStack {
  readonly dir: string;
  readonly cli = composeCli();

  constructor(
    readonly project: string,
    services: Record<string, ServiceSpec>,
  ) {
    this.dir = tempDir('stack');
    const doc = {
      version: '2.4',
      services: Object.fromEntries(
        Object.entries(services).map(([name, s]) => [
          name,
          {
            image: s.image ?? WEB_IMAGE,
            network_mode: 'host',
            init: true,
            labels: { 'deckhand.test': '1' },
            ...(s.environment ? { environment: s.environment } : {}),
            ...(s.healthcheck ? { healthcheck: s.healthcheck } : {}),
            ...(s.command ? { command: s.command } : {}),
          },
        ]),
      ),
    };
    writeFileSync(join(this.dir, 'compose.yaml'), stringify(doc));
  }

  static unique(prefix: string, services: Record<string, ServiceSpec>): TestStack {
    return new TestStack(`dhtest-${prefix}-${process.pid}-${++counter}`, services);
  }

  private compose(args: string[], timeoutMs = 120_000) {
    return runChecked({ argv: [...this.cli, '--project-name', this.project, ...args], cwd: this.dir, timeoutMs });
  }

  async up(): Promise<void> {
    await this.compose(['up', '-d']);
  }

  async down(): Promise<void> {
    await this.compose(['down', '--volumes', '--remove-orphans', '--timeout', '2']).catch(() => undefined);
    // Tags this project's deploys and builds left: the keep tags, and compose's default build names.
    const tags = await runChecked({
      argv: ['docker', 'images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `reference=deckhand-keep/${this.project}-*`, '--filter', `reference=${this.project}_*`, '--filter', `reference=${this.project}-*`],
    }).catch(() => ({ stdout: '' }));
    const list = tags.stdout.split('\n').filter(Boolean);
    if (list.length) await runChecked({ argv: ['docker', 'image', 'rm', '--no-prune', ...list], timeoutMs: 60_000 }).catch(() => undefined);
  }

  async containerId(service: string): Promise<string> {
    const r = await runChecked({
      argv: ['docker', 'ps', '-q', '--filter', `label=com.docker.compose.project=${this.project}`, '--filter', `label=com.docker.compose.service=${service}`],
    });
    return r.stdout.trim().split('\n')[0] ?? '';
  }

  async docker(...args: string[]): Promise<string> {
    return (await runChecked({ argv: ['docker', ...args], timeoutMs: 60_000 })).stdout;
  }
}
