// How a value is written into the stack's .env so that both compose CLIs
// read it back exactly, and which values no line can carry.
//
// The two CLIs parse .env differently:
// - docker-compose v1 (1.29, python-dotenv 0.21) decodes \\ and \' inside
//   single quotes and \\ \' \" \a \b \f \n \r \t \v inside double quotes,
//   then expands ${NAME} and ${NAME:-default} in every value, quoted or not,
//   single quotes included; "$NAME" and "$$" stay as they are.
// - docker compose v2 (compose-go's dotenv) keeps single-quoted text as it
//   is except \' (so \\ stays two backslashes), and inside double quotes
//   decodes \\ \" \$ \n and friends and then expands $NAME, ${NAME} and $$.
// - v1 finds the end of a quoted value with a regular expression that reads
//   \" as an escaped quote, so a value written as "...\\" runs on past its
//   closing quote to the next quote in the file, lines further down.
// - Unquoted, both take the text as it is (no escapes) up to the end of the
//   line, but drop leading and trailing blanks and a " #" comment, and v2
//   expands "$".
// So a value without "$" goes in double quotes with \ and " escaped (both
// decode exactly those two), or bare when it ends with a backslash; a value
// with "$" goes in single quotes with ' escaped (neither expands $NAME
// there). That leaves no way to write ${NAME} for v1, nor a backslash that v1
// would decode next to a "$".
//
// Pure: no file access, so the API's schema and the CLI share it.

/** A .env key deckhand writes: what both CLIs and every shell accept as a variable name. */
export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Characters compose reads the same with or without quotes. */
const PLAIN = /^[A-Za-z0-9_./:@+-]*$/;

/** What docker-compose v1 expands in any .env value (python-dotenv's POSIX variable). */
const V1_EXPANDED = /\$\{[^}:]*(?::-[^}]*)?\}/;

/**
 * Why `value` cannot be written to .env so that compose v1 and v2 both read
 * it literally, or null when it can. Names no part of the value: values are
 * often secrets and the reason ends up in errors and logs.
 */
export function envValueProblem(value: string): string | null {
  if (/[\n\r]/.test(value)) return 'must be a single line (compose cannot carry a line break in a .env value)';
  if (value.includes('\0')) return 'must not contain a NUL character';
  if (!value.includes('$')) {
    if (value.endsWith('\\') && !safeUnquoted(value)) {
      return 'ends with a backslash and starts with a quote or a blank, or has a blank before "#"; docker-compose v1 cannot read such a .env value back';
    }
    return null;
  }
  if (V1_EXPANDED.test(value)) {
    return 'contains ${...}, which docker-compose v1 expands inside every .env value with no way to escape it';
  }
  if (/\\\\|\\'|\\$/.test(value)) {
    return 'contains "$" together with a backslash that is doubled, before a quote or at the end; compose v1 and v2 read such a .env value differently whatever the quoting';
  }
  return null;
}

/**
 * The text after `KEY=` for `value`. Only for values envValueProblem accepts:
 * any other value is refused at the boundary, before a deploy starts.
 */
export function formatEnvValue(value: string): string {
  const problem = envValueProblem(value);
  if (problem !== null) throw new Error(`cannot write this .env value: it ${problem}`);
  if (PLAIN.test(value)) return value;
  if (!value.includes('$')) return value.endsWith('\\') ? value : `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return `'${value.replace(/'/g, "\\'")}'`;
}

/** Whether both CLIs read `value` unquoted as it is: no quote or blank first, no blank last, no comment. */
function safeUnquoted(value: string): boolean {
  return !/^['"\s\u0085]/.test(value) && !/[\s\u0085]$/.test(value) && !/[\s\u0085]#/.test(value) && !value.includes('$');
}
