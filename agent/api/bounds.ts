// What one request may make the agent do and say. Every bound here exists
// because a hostile frame once made the agent walk, store or echo its whole
// input: 80,000 keys validated one by one, audited as 4 MB, echoed as 2 MB.

/** SPEC: an error's `data` lists at most 20 problems. */
export const MAX_PROBLEMS = 20;
/** Longest piece of a caller's input (a key, a path, a message) that is ever repeated back. */
export const MAX_EXCERPT = 200;
/** Params are small by nature: the largest legal one is `env` with 200 variables. */
export const MAX_PARAM_KEYS = 256;
export const MAX_PARAM_NODES = 2048;
export const MAX_PARAM_DEPTH = 8;

/** At most MAX_EXCERPT characters of text, saying how long the rest was. */
export function excerpt(text: string, max = MAX_EXCERPT): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… (${text.length} characters)`;
}

export interface Problem {
  path: string;
  message: string;
}

/** The first MAX_PROBLEMS problems, each cut to an excerpt, and how many were left out. */
export function boundProblems(problems: readonly Problem[]): { shown: Problem[]; more: number } {
  const shown = problems.slice(0, MAX_PROBLEMS).map((p) => ({ path: excerpt(p.path), message: excerpt(p.message) }));
  return { shown, more: Math.max(0, problems.length - shown.length) };
}

/** "a: x; b: y (and 3 more problems)" */
export function problemsSentence(shown: readonly Problem[], more: number): string {
  const list = shown.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ');
  return more > 0 ? `${list} (and ${more} more problem${more === 1 ? '' : 's'})` : list;
}

/**
 * Why params are too large to validate, or null. Walks at most
 * MAX_PARAM_NODES values whatever the input, so the refusal of a huge
 * object costs as little as the acceptance of a small one.
 */
export function oversizedParams(params: unknown): string | null {
  let nodes = 0;
  const walk = (value: unknown, depth: number): string | null => {
    if (++nodes > MAX_PARAM_NODES) return `params too large: more than ${MAX_PARAM_NODES} values`;
    if (typeof value !== 'object' || value === null) return null;
    if (depth > MAX_PARAM_DEPTH) return `params nested deeper than ${MAX_PARAM_DEPTH} levels`;
    let keys = 0;
    for (const key in value) {
      if (++keys > MAX_PARAM_KEYS) return `params too large: an object or list with more than ${MAX_PARAM_KEYS} entries`;
      const problem = walk((value as Record<string, unknown>)[key], depth + 1);
      if (problem) return problem;
    }
    return null;
  };
  return walk(params, 0);
}
