// Loads agent.yaml: YAML parse, strict schema validation, and one line per
// problem that names the key path, so the operator can fix all at once.
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type * as z from '../validation.js';
import { describe } from './primitives.js';
import { agentConfigSchema, type AgentConfig } from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/deckhand/agent.yaml';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems.join('\n')}`);
  }
}

export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.DECKHAND_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export function loadConfigFile(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : String((err as Error).message);
    throw new ConfigError(file, [`cannot read config: ${why}`]);
  }
  return parseConfigText(text, file);
}

export function parseConfigText(text: string, file = 'agent.yaml'): AgentConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const what = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        return `${pos ? `line ${pos.line}, column ${pos.col}` : 'YAML'}: ${what}`;
      }),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [`the config must be a mapping of sections (host, dataDir, health, ...), got ${describe(raw)}`]);
  }
  const result = agentConfigSchema.safeParse(raw, { reportInput: true });
  if (!result.success) throw new ConfigError(file, formatIssues(result.error.issues));
  return result.data;
}

/** `['backups', 0, 'schedule']` -> `backups[0].schedule` */
export function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
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
