import { AppError } from '../../errors.ts';
import type { PatternNode } from './types.ts';

// Grammar (AND binds tighter than OR, as in SQL):
//   expr   := term ('or' term)*
//   term   := factor ('and' factor)*
//   factor := NUMBER | '(' expr ')'
// Positions in messages are 1-based character columns.

type Token =
  | { t: 'num'; n: number; pos: number }
  | { t: 'and' | 'or' | '(' | ')'; pos: number }
  | { t: 'end'; pos: number };

function patternError(message: string): AppError {
  return new AppError('invalid_criteria', `Invalid pattern: ${message}`, [{ path: 'pattern', message }]);
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|(\d+)|(and\b)|(or\b)|([()])/iy;
  let i = 0;
  while (i < src.length) {
    re.lastIndex = i;
    const m = re.exec(src);
    if (!m) {
      const word = /^[^\s()]+/.exec(src.slice(i))?.[0] ?? src[i];
      throw patternError(`unexpected "${word}" at position ${i + 1}`);
    }
    const pos = i + 1;
    if (m[1] !== undefined) tokens.push({ t: 'num', n: Number(m[1]), pos });
    else if (m[2] !== undefined) tokens.push({ t: 'and', pos });
    else if (m[3] !== undefined) tokens.push({ t: 'or', pos });
    else if (m[4] !== undefined) tokens.push({ t: m[4] as '(' | ')', pos });
    i = re.lastIndex;
  }
  tokens.push({ t: 'end', pos: src.length + 1 });
  return tokens;
}

const show = (tok: Token) =>
  tok.t === 'end' ? 'the end of the pattern' : `"${tok.t === 'num' ? tok.n : tok.t}" at position ${tok.pos}`;

/**
 * Parses a pattern such as `(1 and 2) or 3` over `count` conditions. Every condition must be used;
 * a number may appear more than once. Throws AppError('invalid_criteria') saying where.
 */
export function parsePattern(pattern: string, count: number): PatternNode {
  if (pattern.trim() === '') throw patternError('the pattern is empty');
  const tokens = tokenize(pattern);
  let k = 0;
  const peek = () => tokens[k];
  const used = new Set<number>();

  const factor = (): PatternNode => {
    const tok = tokens[k++];
    if (tok.t === 'num') {
      if (tok.n < 1 || tok.n > count)
        throw patternError(
          `condition ${tok.n} at position ${tok.pos} does not exist (there ${count === 1 ? 'is 1 condition' : `are ${count} conditions`})`,
        );
      used.add(tok.n);
      return { type: 'ref', n: tok.n };
    }
    if (tok.t === '(') {
      const inner = expr();
      const close = tokens[k++];
      if (close.t === 'end') throw patternError(`the "(" at position ${tok.pos} is not closed`);
      if (close.t !== ')') throw patternError(`expected "and", "or" or ")" but found ${show(close)}`);
      return inner;
    }
    throw patternError(`expected a condition number or "(" but found ${show(tok)}`);
  };
  const chain = (op: 'and' | 'or', next: () => PatternNode): PatternNode => {
    const children = [next()];
    while (peek().t === op) {
      k++;
      children.push(next());
    }
    // Flatten (1 and (2 and 3)) into one node: simpler SQL, same meaning.
    const flat = children.flatMap((c) => (c.type === op ? c.children : [c]));
    return flat.length === 1 ? flat[0] : { type: op, children: flat };
  };
  const term = () => chain('and', factor);
  const expr = (): PatternNode => chain('or', term);

  const tree = expr();
  const rest = peek();
  if (rest.t === ')') throw patternError(`the ")" at position ${rest.pos} has no matching "("`);
  if (rest.t !== 'end') throw patternError(`expected "and" or "or" but found ${show(rest)}`);
  const unused = Array.from({ length: count }, (_, i) => i + 1).filter((n) => !used.has(n));
  if (unused.length > 0)
    throw patternError(
      `${unused.length === 1 ? 'condition' : 'conditions'} ${unused.join(', ')} ${unused.length === 1 ? 'is' : 'are'} not used in the pattern`,
    );
  return tree;
}

/** No pattern: all conditions ANDed. */
export function allOf(count: number): PatternNode {
  const refs: PatternNode[] = Array.from({ length: count }, (_, i) => ({ type: 'ref', n: i + 1 }));
  return refs.length === 1 ? refs[0] : { type: 'and', children: refs };
}
