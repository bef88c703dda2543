// Aligned text tables, measured by what shows on screen (colour codes take no
// room). When a width is given and the table would overflow it, the last
// column (usually a free-text message) is cut with an ellipsis rather than
// wrapping into the next line. A row with fewer cells than the table lets its
// last cell run across the columns it lacks ("web-2  unreachable (refused)"):
// that cell does not widen any column.
import { visibleLength } from './colour.js';

export type Align = 'left' | 'right';

export interface TableOptions {
  /** Column headings; styled by `headerStyle`. */
  header?: string[];
  headerStyle?: (text: string) => string;
  align?: (Align | undefined)[];
  /** Spaces between columns. */
  gap?: number;
  /** Put in front of every line. */
  indent?: string;
  /** Terminal width: cut the last column to fit. */
  maxWidth?: number;
}

export function renderTable(rows: string[][], opts: TableOptions = {}): string {
  const gap = ' '.repeat(opts.gap ?? 2);
  const indent = opts.indent ?? '';
  const all = opts.header ? [opts.header, ...rows] : rows;
  const columns = Math.max(0, ...all.map((r) => r.length));
  const spans = (r: string[], c: number) => r.length < columns && c === r.length - 1;
  const widths = Array.from({ length: columns }, (_, c) => Math.max(0, ...all.map((r) => (spans(r, c) ? 0 : visibleLength(r[c] ?? '')))));
  const lastWidth = fitLastColumn(widths, indent.length, gap.length, opts.maxWidth);

  const line = (row: string[], style: (s: string) => string = (s) => s): string => {
    const cells = Array.from({ length: row.length < columns ? row.length : columns }, (_, c) => {
      let text = row[c] ?? '';
      if (spans(row, c)) return style(text);
      const last = c === columns - 1;
      if (last && lastWidth !== undefined && visibleLength(text) > lastWidth) text = truncate(text, lastWidth);
      const pad = ' '.repeat(Math.max(0, widths[c]! - visibleLength(text)));
      if (opts.align?.[c] === 'right') return pad + style(text);
      // No trailing spaces after the last column.
      return last ? style(text) : style(text) + pad;
    });
    return (indent + cells.join(gap)).trimEnd();
  };

  const out: string[] = [];
  if (opts.header) out.push(line(opts.header, opts.headerStyle));
  for (const row of rows) out.push(line(row));
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/** The room left for the last column, if the table would not fit; undefined when it does, or cannot be helped. */
function fitLastColumn(widths: number[], indent: number, gap: number, maxWidth: number | undefined): number | undefined {
  if (maxWidth === undefined || widths.length === 0) return undefined;
  const total = indent + widths.reduce((a, b) => a + b, 0) + gap * (widths.length - 1);
  if (total <= maxWidth) return undefined;
  const room = maxWidth - (total - widths[widths.length - 1]!);
  // Cutting a message to a stub helps nobody: then let the terminal wrap.
  if (room < 10) return undefined;
  widths[widths.length - 1] = room;
  return room;
}

/** Cuts plain text to `width` columns with an ellipsis; styled text is cut to its plain form. */
export function truncate(text: string, width: number): string {
  if (visibleLength(text) <= width) return text;
  const chars = [...text.replace(/\x1b\[[0-9;]*m/g, '')];
  return `${chars.slice(0, Math.max(0, width - 1)).join('').trimEnd()}…`;
}
