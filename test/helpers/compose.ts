// The compose CLI a test run uses, chosen by one variable so that a run is
// entirely v1 or entirely v2: the test's own compose calls (TestStack) and the
// agent under test (an explicit stack.compose) use the same one.
//
//   DECKHAND_TEST_COMPOSE=v1   docker-compose (1.29, bookworm's package)
//   DECKHAND_TEST_COMPOSE=v2   docker compose (the plugin; the default: what servers run)

export type ComposeVersion = 'v1' | 'v2';

export const COMPOSE_VERSIONS: readonly ComposeVersion[] = ['v1', 'v2'];

export function composeVersion(env: NodeJS.ProcessEnv = process.env): ComposeVersion {
  const v = env.DECKHAND_TEST_COMPOSE ?? 'v2';
  if (v !== 'v1' && v !== 'v2') throw new Error(`DECKHAND_TEST_COMPOSE must be v1 or v2, got ${JSON.stringify(v)}`);
  return v;
}

/** argv prefix of the compose CLI for VERSION. */
export function composeCli(version: ComposeVersion = composeVersion()): string[] {
  return version === 'v1' ? ['docker-compose'] : ['docker', 'compose'];
}

/** The agent's `stack.compose` setting for VERSION (never `auto`: a run must not pick the other one). */
export function agentComposeSetting(version: ComposeVersion = composeVersion()): 'docker-compose' | 'docker compose' {
  return version === 'v1' ? 'docker-compose' : 'docker compose';
}

/**
 * The share of a long per-step list (kill the agent at each step) this run
 * takes: when the suite runs a file under both compose versions
 * (test/matrix/run.ts sets DECKHAND_TEST_MATRIX), each item runs under one
 * of them, alternating, so every step is covered once and both versions
 * see the recovery path; run on its own, a file takes every item.
 */
export function shareOfMatrix<T>(items: readonly T[], env: NodeJS.ProcessEnv = process.env): T[] {
  if (env.DECKHAND_TEST_MATRIX !== '1') return [...items];
  const mine = composeVersion(env) === 'v2' ? 0 : 1;
  return items.filter((_, i) => i % 2 === mine);
}
