// Static checks over the web UI's sources: every UI string goes through i18next (no bare text in
// JSX), every t() key exists in the English messages (and every message is used), and no
// component renders raw HTML.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const src = join(import.meta.dirname, '..', '..', 'web', 'src');
const en = JSON.parse(readFileSync(join(src, 'i18n', 'en.json'), 'utf8'));
const VISIBLE_ATTRIBUTES = new Set(['aria-label', 'placeholder', 'title', 'alt', 'label']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Leaf keys of the message file, dotted, with plural suffixes (_one, _other …) removed. */
function messageKeys(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v && typeof v === 'object'
      ? messageKeys(v as Record<string, unknown>, `${prefix}${k}.`)
      : [`${prefix}${k.replace(/_(zero|one|two|few|many|other)$/, '')}`],
  );
}

const scan = files(src).map((file) => {
  const text = readFileSync(file, 'utf8');
  const kind = file.endsWith('.tsx') ? ts.ScriptKind.TSX : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const bare: string[] = [];
  const keys: string[] = [];
  const prefixes: string[] = [];
  const where = (n: ts.Node) =>
    `${file.slice(src.length + 1)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
  const visit = (n: ts.Node) => {
    if (ts.isJsxText(n) && /\p{L}/u.test(n.text)) bare.push(`${where(n)} text "${n.text.trim()}"`);
    if (
      ts.isJsxAttribute(n) &&
      VISIBLE_ATTRIBUTES.has(n.name.getText()) &&
      n.initializer &&
      ts.isStringLiteral(n.initializer) &&
      /\p{L}/u.test(n.initializer.text)
    )
      bare.push(`${where(n)} ${n.name.getText()}="${n.initializer.text}"`);
    if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 't') {
      const arg = n.arguments[0];
      if (arg && ts.isStringLiteral(arg)) keys.push(arg.text);
      else if (arg && ts.isTemplateExpression(arg)) prefixes.push(arg.head.text);
      else if (arg && ts.isNoSubstitutionTemplateLiteral(arg)) keys.push(arg.text);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { file, text, bare, keys, prefixes };
});

describe('web UI sources', () => {
  it('have no bare user-visible strings in JSX', () => {
    expect(scan.flatMap((s) => s.bare)).toEqual([]);
  });

  it('use only message keys that exist, and every message is used', () => {
    const known = new Set(messageKeys(en));
    const used = scan.flatMap((s) => s.keys);
    const prefixes = scan.flatMap((s) => s.prefixes);
    expect(used.filter((k) => !known.has(k))).toEqual([]);
    for (const p of prefixes)
      expect(
        [...known].some((k) => k.startsWith(p)),
        `messages under ${p}`,
      ).toBe(true);
    const unused = [...known].filter((k) => !used.includes(k) && !prefixes.some((p) => k.startsWith(p)));
    expect(unused).toEqual([]);
  });

  it('never render raw HTML', () => {
    expect(scan.filter((s) => s.text.includes('dangerouslySetInnerHTML')).map((s) => s.file)).toEqual([]);
  });
});
