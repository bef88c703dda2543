// Loads agent.yaml: a bounded read of a regular file, a bounded YAML parse,
// checks on the tree (duplicate keys, aliases, depth), strict schema
// validation, and one line per problem that names the key path or the line,
// so the operator can fix all at once.
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import type * as z from '../validation.js';
import { clip, describe } from './primitives.js';
import { readConfigText, UnreadableConfig } from './read.js';
import { agentConfigSchema, type AgentConfig } from './schema.js';
import { tokenProblems } from './tokens.js';
import { treeProblems } from './tree.js';

export const DEFAULT_CONFIG_PATH = '/etc/deckhand/agent.yaml';

/** Problem lines a ConfigError keeps: a file of 40,000 unknown keys must not print 40,000 lines. */
export const MAX_PROBLEMS = 20;
/** Longest problem line; messages clip the values they echo, this bounds the ones that do not. */
export const MAX_PROBLEM_LINE = 1000;
/**
 * The yaml library's own limit on alias use while converting (its default);
 * treeProblems() refuses alias bombs earlier, with a line and column.
 */
const MAX_ALIAS_COUNT = 100;

export class ConfigError extends Error {
  /** At most MAX_PROBLEMS lines, then one saying how many more there were. */
  readonly problems: string[];

  constructor(
    readonly file: string,
    problems: readonly string[],
  ) {
    const shown = boundProblems(problems);
    super(`${clip(file)}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${shown.join('\n')}`);
    this.problems = shown;
  }
}

/** The first `max` problems, each clipped, and `and N more problems` for the rest. */
export function boundProblems(problems: readonly string[], max = MAX_PROBLEMS): string[] {
  const shown = problems.slice(0, max).map((line) => clip(line, MAX_PROBLEM_LINE));
  const rest = problems.length - shown.length;
  if (rest > 0) shown.push(`and ${rest} more problem${rest === 1 ? '' : 's'}`);
  return shown;
}

export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.DECKHAND_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export function loadConfigFile(file: string): AgentConfig {
  let text: string;
  try {
    text = readConfigText(file);
  } catch (err) {
    if (err instanceof UnreadableConfig) throw new ConfigError(file, [`cannot read config: ${err.message}`]);
    throw err;
  }
  return parseConfigText(text, file);
}

export function parseConfigText(text: string, file = 'agent.yaml'): AgentConfig {
  const raw = parseYaml(text, file) ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [`the config must be a mapping of sections (host, dataDir, health, ...), got ${describe(raw)}`]);
  }
  const result = agentConfigSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new ConfigError(file, formatIssues(result.error.issues));
  return result.data;
}

/** The YAML text as plain values; every failure, the library's included, is a ConfigError. */
function parseYaml(text: string, file: string): unknown {
  const tooMuch = tokenProblems(text);
  if (tooMuch.length > 0) throw new ConfigError(file, tooMuch);
  const lines = new LineCounter();
  // uniqueKeys off: treeProblems() finds duplicates in linear time.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: false, lineCounter: lines });
  if (doc.errors.length > 0) throw new ConfigError(file, doc.errors.map(yamlErrorLine));
  const problems = treeProblems(doc, lines);
  if (problems.length > 0) throw new ConfigError(file, problems);
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // The library throws (a ReferenceError, without a position) for what
    // treeProblems() did not foresee; still a config error, not a crash.
    throw new ConfigError(file, [`YAML: ${clip((err as Error).message)}`]);
  }
}

function yamlErrorLine(e: YAMLError): string {
  const pos = e.linePos?.[0];
  const what = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
  return `${pos ? `line ${pos.line}, column ${pos.col}` : 'YAML'}: ${what}`;
}

/** `['backups', 0, 'schedule']` -> `backups[0].schedule` */
export function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? clip(String(part)) : `.${clip(String(part))}`;
  }
  return out;
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const where = keyPath(issue.path);
    const prefix = where === '' ? '' : `${where}: `;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) lines.push(`${keyPath([...issue.path, key])}: unknown key`);
        break;
      case 'invalid_type':
        lines.push(issue.input === undefined ? `${prefix}required` : `${prefix}${typeMessage(issue)}`);
        break;
      case 'invalid_value':
        lines.push(`${prefix}must be ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${describe(issue.input)}`);
        break;
      case 'too_small':
      case 'too_big':
        lines.push(`${prefix}${boundMessage(issue)}`);
        break;
      default:
        lines.push(`${prefix}${issue.message}`);
    }
  }
  return [...new Set(lines)];
}

function typeMessage(issue: z.core.$ZodIssueInvalidType): string {
  // A custom message (from a primitive) already reads well; zod's default does not.
  if (!issue.message.startsWith('Invalid input')) return issue.message;
  const expected = issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`;
  return `expected ${expected}, got ${describe(issue.input)}`;
}

function boundMessage(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  if (!issue.message.startsWith('Too ')) return issue.message;
  const small = issue.code === 'too_small';
  const bound = String(small ? (issue as z.core.$ZodIssueTooSmall).minimum : (issue as z.core.$ZodIssueTooBig).maximum);
  if (issue.origin === 'array') return `must have ${small ? 'at least' : 'at most'} ${bound} item${bound === '1' ? '' : 's'}`;
  if (issue.origin === 'string') return `must be ${small ? 'at least' : 'at most'} ${bound} characters`;
  return `must be ${small ? 'at least' : 'at most'} ${bound}, got ${describe(issue.input)}`;
}
