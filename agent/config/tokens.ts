// A pass over the YAML tokens before the parser sees them. Within the 1 MiB
// read limit, the yaml library's parser can still take seconds and gigabytes:
// it keeps about 2 KB per token, recurses once per level of flow nesting (a
// file of a million "[" ran 15 s and out of memory) and collects every error
// of a garbage file. Its lexer alone streams in constant memory, so counting
// tokens and flow depth first bounds what parsing may cost.
import { Lexer } from 'yaml';

export interface TokenLimits {
  /** Tokens in the whole text: the spec's example config has about 500; 40,000 `key: value` lines have 280,000. */
  tokens: number;
  /** Levels of nested [ ] and { }. */
  flowDepth: number;
}

export const TOKEN_LIMITS: TokenLimits = { tokens: 300_000, flowDepth: 64 };

/** The lexer's markers for the parser; they stand for no source text. */
const MARKERS = new Set(['\x02', '\x18', '\x1f']);
/** The lexer's "flow collection cut short": the flow level starts again from zero. */
const FLOW_END = '\x18';

/** One line, `line L, column C: ...`, when the text is too much to parse; empty otherwise. */
export function tokenProblems(text: string, limits: TokenLimits = TOKEN_LIMITS): string[] {
  let count = 0;
  let depth = 0;
  let offset = 0;
  for (const token of new Lexer().lex(text)) {
    count += 1;
    if (count > limits.tokens) return [`${positionAt(text, offset)}: more than ${limits.tokens} YAML tokens; a config needs a few thousand`];
    if (token === '[' || token === '{') {
      depth += 1;
      if (depth > limits.flowDepth) return [`${positionAt(text, offset)}: [ ] and { } nested deeper than ${limits.flowDepth} levels`];
    } else if (token === ']' || token === '}') depth = Math.max(0, depth - 1);
    else if (token === FLOW_END) depth = 0;
    if (!MARKERS.has(token)) offset += token.length;
  }
  return [];
}

/** `line L, column C` (from 1) of a character offset, as the parser's own messages give it. */
export function positionAt(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line += 1;
    lineStart = i + 1;
  }
  return `line ${line}, column ${offset - lineStart + 1}`;
}
