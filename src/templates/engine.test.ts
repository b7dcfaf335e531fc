// The sandbox: template text cannot read secrets, reach the process or the file system, run code,
// or keep the machine busy; merge values cannot inject markup or headers.
import { describe, expect, it } from 'vitest';
import {
  compileTemplate,
  htmlEngine,
  renderCompiled,
  renderCompiledSync,
  TEMPLATE_LIMITS,
  textEngine,
} from './engine.ts';

const SECRET = 'parley-test-secret-value-1234567890';
process.env.PARLEY_TEMPLATE_TEST_SECRET = SECRET;

const ctx = () => ({
  lead: { first_name: 'Ada', last_name: 'Lovelace', tags: ['a', 'b'], empty: null },
  owner: { name: 'Olive Owner', email: 'olive@example.com' },
  org: { name: 'Acme' },
});

async function renderText(src: string, context: Record<string, unknown> = ctx()) {
  return (await renderCompiled(compileTemplate({ subject: 's', text: src }), context)).text;
}

/** The error a template gives at compile or render time (or null when it renders). */
async function failure(src: string, context: Record<string, unknown> = ctx()): Promise<string | null> {
  try {
    await renderText(src, context);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('template sandbox', () => {
  it('merges fields, with fallbacks for empty values', async () => {
    expect(await renderText('Hi {{ lead.first_name }} of {{ org.name }}')).toBe('Hi Ada of Acme');
    expect(await renderText('Hi {{ lead.empty | default: "there" }}')).toBe('Hi there');
    expect(await renderText('{{ lead.tags | join: ", " }} {{ lead.tags.size }}')).toBe('a, b 2');
  });

  it('refuses unknown variables and filters instead of writing blanks', async () => {
    expect(await failure('{{ lead.frist_name }}')).toMatch(/undefined variable: lead\.frist_name/);
    expect(await failure('{{ nobody }}')).toMatch(/undefined variable: nobody/);
    expect(await failure('{{ lead.first_name | shout }}')).toMatch(/undefined filter: shout/);
  });

  it('cannot reach prototypes, constructors or functions', async () => {
    for (const src of [
      '{{ lead.constructor }}',
      '{{ lead.__proto__ }}',
      '{{ lead.first_name.constructor }}',
      '{{ lead.tags.constructor.name }}',
      '{{ lead["constructor"]["constructor"] }}',
      '{{ lead.hasOwnProperty }}',
      '{{ lead.toString }}',
      '{{ lead.tags.push }}',
      '{% assign k = "constructor" %}{{ lead[k] }}',
    ])
      expect(await failure(src), src).toMatch(/undefined variable/);
    // Calls are not Liquid syntax at all.
    expect(await failure('{{ lead.constructor("return process")() }}')).not.toBeNull();
    // Filters that take property names read own properties only.
    expect(await renderText('[{{ lead.tags | map: "constructor" | join: "" }}]')).toBe('[]');
    expect(await failure('{{ lead.tags | where: "constructor" }}')).not.toBeNull();
    // Inherited properties of a context object are invisible too.
    const inherited = Object.assign(Object.create({ secret: SECRET }), { name: 'x' });
    expect(await failure('{{ o.secret }}', { o: inherited })).toMatch(/undefined variable/);
  });

  it('cannot read the process, its environment, globals or configuration', async () => {
    for (const src of [
      '{{ process.env.PARLEY_TEMPLATE_TEST_SECRET }}',
      '{{ process }}',
      '{{ global }}',
      '{{ globalThis }}',
      '{{ this }}',
      '{{ env }}',
      '{{ config.secret }}',
      '{{ require }}',
      '{{ module }}',
      '{{ settings }}',
    ])
      expect(await failure(src), src).toMatch(/undefined variable/);
    // Whatever a template does, the secret never appears in what it renders.
    const out = await renderText(
      '{% for k in lead %}{{ k }}{% endfor %}{{ lead | json }}{{ owner | json }}{{ "now" | date: "%Y" }}',
    );
    expect(out).not.toContain(SECRET);
  });

  it('cannot include, render or lay out files (refused when parsed, nothing read)', async () => {
    for (const src of [
      '{% include "/etc/passwd" %}',
      '{% render "/etc/passwd" %}',
      '{% layout "/etc/passwd" %}x',
      "{% include '../../../../etc/passwd' %}",
      '{% liquid\n  include "/etc/passwd"\n%}',
      '{% if true %}{% render "package.json" %}{% endif %}',
    ]) {
      const err = await failure(src);
      expect(err, src).toMatch(/is not available in templates/);
      expect(err).not.toContain('root:');
    }
    // The engines' file system has no files, even if liquidjs were asked directly.
    await expect(textEngine.renderFile('/etc/passwd')).rejects.toThrow();
    await expect(htmlEngine.renderFile('package.json')).rejects.toThrow();
    expect(() => textEngine.options.fs.readFileSync('/etc/passwd')).toThrow(/cannot read files/);
  });

  it('bounds loops, allocations and time', async () => {
    const cases = [
      '{% for i in (1..100000000) %}{{ i }}{% endfor %}',
      '{% for i in (1..5000) %}{% for j in (1..5000) %}x{% endfor %}{% endfor %}',
      '{% assign s = "xxxxxxxxxx" %}{% for i in (1..60) %}{% assign s = s | append: s %}{% endfor %}{{ s }}',
      '{% capture s %}xxxxxxxxxx{% endcapture %}{% for i in (1..60) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}{{ s | size }}',
      '{% assign a = "a,b" | split: "," %}{% for i in (1..40) %}{% assign a = a | concat: a %}{% endfor %}{{ a | size }}',
      '{% tablerow i in (1..10000000) %}{{ i }}{% endtablerow %}',
    ];
    for (const src of cases) {
      const t0 = performance.now();
      expect(await failure(src), src).toMatch(/limit exceeded|Invalid string length|too long/);
      // Unbounded, each would run for minutes or exhaust memory; the limits stop them in well under
      // a second on a quiet machine (the bound is loose: the suite shares 2 cores with other tests).
      expect(performance.now() - t0, src).toBeLessThan(10_000);
    }
    // Sync rendering is bounded the same way.
    const c = compileTemplate({ subject: 's', text: cases[1] });
    expect(() => renderCompiledSync(c, ctx())).toThrow(/limit exceeded/);
  });

  it('stays fast on pathological inputs (no regular expressions over user text)', async () => {
    const big = `${'a'.repeat(100_000)}!`;
    const t0 = performance.now();
    const out = await renderText(
      '{{ v.big | replace: "(a+)+$", "x" | size }} {{ v.big | split: "a" | size }}',
      {
        v: { big },
      },
    );
    expect(out).toBe('100001 100001');
    expect(performance.now() - t0).toBeLessThan(5_000); // a backtracking regex would take minutes
  });

  it('refuses sources past the limits with a clear message', () => {
    expect(() => compileTemplate({ subject: 'x'.repeat(TEMPLATE_LIMITS.subject + 1), text: '' })).toThrow(
      /subject is longer than/,
    );
    expect(() =>
      compileTemplate({ subject: 's', html: 'x'.repeat(TEMPLATE_LIMITS.html + 1), text: '' }),
    ).toThrow(/html is longer than/);
  });

  it('names the part and line of a syntax error', () => {
    expect(() => compileTemplate({ subject: 's', html: '<p>\n{% if %}</p>', text: '' })).toThrow(
      /html is not a valid template: .*line 2/,
    );
    expect(() => compileTemplate({ subject: '{{ lead.x', text: '' })).toThrow(
      /subject is not a valid template/,
    );
  });

  it('escapes merge values in HTML only, and keeps the subject on one line', async () => {
    const evil = '<script>alert(1)</script> & "q" \'s\r\nBcc: victim@example.com';
    const c = compileTemplate({
      subject: 'Re: {{ v.x }}',
      html: '<p title="{{ v.x }}">{{ v.x }}</p>',
      text: '{{ v.x }}',
    });
    const r = await renderCompiled(c, { v: { x: evil } });
    expect(r.html).not.toContain('<script>');
    expect(r.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;q&#34; &#39;s');
    expect(r.text).toBe(evil);
    expect(r.subject).toBe('Re: <script>alert(1)</script> & "q" \'s Bcc: victim@example.com');
    expect(r.subject).not.toMatch(/[\r\n]/);
    expect(renderCompiledSync(c, { v: { x: evil } })).toEqual(r);
  });

  it('does not let one render change the context another render sees', async () => {
    const context = ctx();
    const c = compileTemplate({
      subject: 's',
      text: '{% increment n %}{% increment n %}{% assign lead = "x" %}',
    });
    await renderCompiled(c, context);
    await renderCompiled(c, context);
    expect(context).toEqual(ctx());
    expect(Object.keys(context)).not.toContain('n');
  });

  it('renders a text-only template without an HTML part', async () => {
    const r = await renderCompiled(compileTemplate({ subject: 'S', html: null, text: 'T' }), {});
    expect(r).toEqual({ subject: 'S', html: null, text: 'T' });
    expect(
      (await renderCompiled(compileTemplate({ subject: 'S', html: '', text: 'T' }), {})).html,
    ).toBeNull();
  });
});
