import { describe, expect, it } from 'vitest';
import { AppError } from '../../errors.ts';
import { allOf, parsePattern } from './pattern.ts';
import type { PatternNode } from './types.ts';

/** A compact rendering of the tree: and/or with explicit parentheses. */
function show(p: PatternNode): string {
  if (p.type === 'ref') return String(p.n);
  return `(${p.children.map(show).join(` ${p.type} `)})`;
}

function errorOf(pattern: string, count: number): AppError {
  try {
    parsePattern(pattern, count);
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    const err = e as AppError;
    expect(err.code).toBe('invalid_criteria');
    expect(err.details[0].path).toBe('pattern');
    return err;
  }
  throw new Error(`"${pattern}" was accepted`);
}

describe('parsePattern', () => {
  it.each([
    ['1', 1, '1'],
    ['1 and 2', 2, '(1 and 2)'],
    ['(1 and 2) or 3', 3, '((1 and 2) or 3)'],
    ['1 AND 2 Or 3', 3, '((1 and 2) or 3)'],
    // AND binds tighter than OR when they are mixed without parentheses.
    ['1 or 2 and 3', 3, '(1 or (2 and 3))'],
    ['1 and 2 or 3 and 4', 4, '((1 and 2) or (3 and 4))'],
    ['1 or (2 or 3)', 3, '(1 or 2 or 3)'],
    ['((1))', 1, '1'],
    ['(1 or 2) and (3 or 4)', 4, '((1 or 2) and (3 or 4))'],
    ['  1and(2)  ', 2, '(1 and 2)'],
    ['(1 and 2) or (1 and 3)', 3, '((1 and 2) or (1 and 3))'],
  ])('parses %s', (pattern, count, tree) => {
    expect(show(parsePattern(pattern, count))).toBe(tree);
  });

  it.each([
    ['', 1, 'the pattern is empty'],
    ['   ', 1, 'the pattern is empty'],
    ['1 and 4', 3, 'condition 4 at position 7 does not exist (there are 3 conditions)'],
    ['0', 1, 'condition 0 at position 1 does not exist (there is 1 condition)'],
    ['1 and 2', 3, 'condition 3 is not used in the pattern'],
    ['1', 3, 'conditions 2, 3 are not used in the pattern'],
    ['(1 and 2', 2, 'the "(" at position 1 is not closed'],
    ['1 and 2)', 2, 'the ")" at position 8 has no matching "("'],
    ['(1 2)', 2, 'expected "and", "or" or ")" but found "2" at position 4'],
    ['1 2', 2, 'expected "and" or "or" but found "2" at position 3'],
    ['1 and', 1, 'expected a condition number or "(" but found the end of the pattern'],
    ['1 and or 2', 2, 'expected a condition number or "(" but found "or" at position 7'],
    ['()', 1, 'expected a condition number or "(" but found ")" at position 2'],
    ['1 && 2', 2, 'unexpected "&&" at position 3'],
    ['1 and 2; drop table', 2, 'unexpected ";" at position 8'],
    ['1 xor 2', 2, 'unexpected "xor" at position 3'],
    ['1 andx 2', 2, 'unexpected "andx" at position 3'],
  ])('refuses %j', (pattern, count, message) => {
    expect(errorOf(pattern, count).details[0].message).toBe(message);
  });

  it('without a pattern ANDs every condition', () => {
    expect(show(allOf(1))).toBe('1');
    expect(show(allOf(3))).toBe('(1 and 2 and 3)');
  });
});
