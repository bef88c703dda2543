// Checks on the parsed YAML tree before it becomes plain values, each with
// the line and column to fix:
// - duplicate keys, with one Map per mapping: the yaml library's own
//   `uniqueKeys` compares every key with all the keys before it, which took
//   20 s on a file of 40,000 keys;
// - aliases: few (the library resolves each one by scanning the document, so
//   thousands take seconds), never inside their own anchor, and never adding
//   more than a bounded number of nodes ("billion laughs": ten aliases of ten
//   aliases of ... grow a small file into gigabytes once converted);
// - depth, so that converting and validating the tree stays shallow.
import { isAlias, isMap, isPair, isScalar, isSeq, type Alias, type Document, type LineCounter, type Pair } from 'yaml';
import { clip, quote } from './primitives.js';

export interface TreeLimits {
  /** Aliases in the document. */
  aliases: number;
  /** Nodes that aliases add to the document once expanded. */
  aliasedNodes: number;
  /** Levels of nested mappings and lists. */
  depth: number;
}

/** An agent.yaml needs a handful of aliases and six levels at most; these leave wide room. */
export const TREE_LIMITS: TreeLimits = { aliases: 100, aliasedNodes: 10_000, depth: 64 };

/** One line per problem, `line L, column C: ...`; empty when the tree is fine. */
export function treeProblems(doc: Document.Parsed, lines: LineCounter, limits: TreeLimits = TREE_LIMITS): string[] {
  const walk = new TreeWalk(lines, limits);
  walk.size(doc.contents, 0);
  return walk.problems;
}

/** The key a plain JS object gets for this YAML key (as the library converts it), or undefined when it is not a scalar. */
export function keyId(key: unknown): string | undefined {
  if (key === null || key === undefined) return '';
  if (!isScalar(key)) return undefined;
  const value = key.value;
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? undefined : String(value);
}

/** An anchor's expanded size; undefined while its own node is being walked. */
interface AnchorEntry {
  size: number | undefined;
}

class TreeWalk {
  readonly problems: string[] = [];
  private readonly anchors = new Map<string, AnchorEntry>();
  private aliases = 0;
  private aliasedNodes = 0;
  private stopped = false;

  constructor(
    private readonly lines: LineCounter,
    private readonly limits: TreeLimits,
  ) {}

  /** Walks node in document order (anchors before their aliases) and returns its size with aliases expanded. */
  size(node: unknown, depth: number): number {
    if (this.stopped || node === null || node === undefined) return 0;
    if (isAlias(node)) return this.alias(node);
    if (depth > this.limits.depth) return this.stop(node, `nested deeper than ${this.limits.depth} levels`);
    // An alias refers to the latest anchor of its name before it; a later
    // anchor of the same name inside this node replaces the map entry, not this one.
    const anchor = (node as { anchor?: string }).anchor;
    const entry: AnchorEntry = { size: undefined };
    if (anchor) this.anchors.set(anchor, entry);
    let size = 1;
    if (isMap(node)) size += this.pairs(node.items, depth, true);
    else if (isSeq(node)) {
      for (const item of node.items) size += isPair(item) ? this.pairs([item], depth, false) : this.size(item, depth + 1);
    }
    entry.size = size;
    return size;
  }

  private pairs(items: readonly Pair[], depth: number, uniqueKeys: boolean): number {
    const firstAt = new Map<string, number | undefined>();
    let size = 0;
    for (const pair of items) {
      if (this.stopped) break;
      const id = uniqueKeys ? keyId(pair.key) : undefined;
      if (id !== undefined) {
        if (firstAt.has(id)) this.problem(pair.key, `duplicate key ${quote(id)} (first at ${this.at(firstAt.get(id))})`);
        else firstAt.set(id, offsetOf(pair.key));
      }
      size += this.size(pair.key, depth + 1) + this.size(pair.value, depth + 1);
    }
    return size;
  }

  private alias(node: Alias): number {
    const name = clip(node.source);
    const entry = this.anchors.get(node.source);
    if (!entry) {
      this.problem(node, `alias *${name} has no anchor &${name} before it`);
      return 1;
    }
    if (entry.size === undefined) return this.stop(node, `alias *${name} is inside the node it refers to (a loop)`);
    this.aliases += 1;
    if (this.aliases > this.limits.aliases) return this.stop(node, `more than ${this.limits.aliases} aliases`);
    this.aliasedNodes += entry.size;
    if (this.aliasedNodes > this.limits.aliasedNodes) {
      return this.stop(node, `aliases expand the document by more than ${this.limits.aliasedNodes} nodes (alias *${name} and those before it)`);
    }
    return entry.size;
  }

  private problem(node: unknown, message: string): void {
    this.problems.push(`${this.at(offsetOf(node))}: ${message}`);
  }

  /** Records a problem after which walking further would only repeat it or cost too much. */
  private stop(node: unknown, message: string): number {
    this.problem(node, message);
    this.stopped = true;
    return 0;
  }

  private at(offset: number | undefined): string {
    if (offset === undefined) return 'YAML';
    const { line, col } = this.lines.linePos(offset);
    return `line ${line}, column ${col}`;
  }
}

function offsetOf(node: unknown): number | undefined {
  return (node as { range?: [number, number, number] | null } | null)?.range?.[0];
}
