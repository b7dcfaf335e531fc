import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.ts';
import {
  compileTemplate,
  renderCompiled,
  renderCompiledSync,
  TEMPLATE_LIMITS,
} from '../../src/templates/index.ts';
import { cases, FUZZ_TIMEOUT, fuzzOptions, mutated, within } from './support.ts';

// Template sources are written by users and merge data comes from records anyone may have filled
// in (web forms, imports). Random Liquid over random data must: compile or be refused with a clear
// validation error; render or fail with one, within the render limits; never read the process, its
// environment or a file; and in HTML, never let a merge value write markup.

const RUNS = cases(800);
const LIMIT_MS = 3_000; // three parts, each stopped by renderLimit (250 ms) at worst

// Values only a leak could put in the output.
const SECRET = `fuzz-secret-${process.pid}-7f3a`;
process.env.PARLEY_FUZZ_SECRET = SECRET;
const dir = mkdtempSync(join(tmpdir(), 'parley-fuzz-'));
const FILE = join(dir, 'secret.liquid');
writeFileSync(FILE, `file-${SECRET}`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MARKUP = '<x-fuzz-inject>';

const names = fc.constantFrom(
  'lead.name',
  'lead.email',
  'lead.tags',
  'lead.revenue',
  'lead.account.name',
  'owner.first_name',
  'org.name',
  'lead',
  'nothing',
  'lead.missing',
  'lead.constructor',
  'lead.constructor.constructor',
  'lead.__proto__',
  'lead.name.constructor',
  'lead.name.length',
  'lead.tags.size',
  'lead.tags.first',
  'lead.toString',
  'lead.hasOwnProperty',
  'process',
  'process.env',
  'process.env.PARLEY_FUZZ_SECRET',
  'global',
  'globalThis',
  'require',
  'this',
  'constructor',
  '__proto__',
  'forloop.index',
  'x',
  'lead["name"]',
  'lead["constructor"]',
  'lead[0]',
);
const literal = fc.oneof(
  fc.integer({ min: -1e6, max: 1e6 }).map(String),
  fc.constantFrom('1e308', '-0', '0.1', 'nil', 'true', 'false', 'empty', 'blank', '(1..5)', '(1..100000000)'),
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom(`"${FILE}"`, '"/etc/passwd"', '"%Y-%m-%d %H:%M"', '"%99999999d"', '","', '""'),
);
const operand = fc.oneof(names, literal);
const filter = fc
  .tuple(
    fc.constantFrom(
      'upcase',
      'downcase',
      'capitalize',
      'append',
      'prepend',
      'split',
      'join',
      'size',
      'first',
      'last',
      'times',
      'plus',
      'minus',
      'divided_by',
      'modulo',
      'slice',
      'replace',
      'remove',
      'truncate',
      'truncatewords',
      'date',
      'default',
      'json',
      'escape',
      'url_encode',
      'url_decode',
      'sort',
      'sort_natural',
      'map',
      'where',
      'uniq',
      'reverse',
      'concat',
      'strip_html',
      'newline_to_br',
      'abs',
      'round',
      'at_least',
      'compact',
      'raw',
      'inspect',
    ),
    fc.array(operand, { maxLength: 2 }),
  )
  .map(([f, args]) => (args.length ? `${f}: ${args.join(', ')}` : f));
const output = fc
  .tuple(operand, fc.array(filter, { maxLength: 3 }))
  .map(([o, fs]) => `{{ ${[o, ...fs].join(' | ')} }}`);
const condition = fc
  .tuple(operand, fc.constantFrom('==', '!=', '<', '>=', 'contains', 'and', 'or'), operand)
  .map(([a, op, b]) => `${a} ${op} ${b}`);

// What must be refused at compile time: file tags, unknown tags, broken syntax.
const broken = fc.constantFrom(
  `{% include "${FILE}" %}`,
  `{% render "${FILE}" %}`,
  '{% layout "x" %}',
  '{% nosuchtag %}',
  '{% if %}',
  '{{',
  '{%',
  '{{ lead.name | }}',
  '{% for %}',
  '{% endif %}',
  '{{ lead.name | unknown_filter }}',
);

const { block: source } = fc.letrec<{ block: string }>((tie) => ({
  block: fc
    .array(
      fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        { arbitrary: fc.string({ maxLength: 20 }), weight: 30 },
        { arbitrary: fc.constant(MARKUP), weight: 10 },
        { arbitrary: output, weight: 40 },
        fc.tuple(condition, tie('block')).map(([c, b]) => `{% if ${c} %}${b}{% else %}x{% endif %}`),
        fc.tuple(condition, tie('block')).map(([c, b]) => `{% unless ${c} %}${b}{% endunless %}`),
        fc
          .tuple(fc.constantFrom('(1..3)', '(1..100000)', 'lead.tags', 'lead.name', 'nothing'), tie('block'))
          .map(([r, b]) => `{% for i in ${r} %}${b}{{ i }}{% endfor %}`),
        fc
          .tuple(operand, tie('block'))
          .map(([o, b]) => `{% case ${o} %}{% when 1 %}${b}{% else %}e{% endcase %}`),
        fc
          .tuple(fc.constantFrom('x', 'y', 'lead', 'process'), output)
          .map(([v, o]) => `{% assign ${v} = ${o.slice(3, -3)} %}`),
        tie('block').map((b) => `{% capture x %}${b}{% endcapture %}{{ x | size }}`),
        fc.constantFrom(
          '{% increment c %}',
          '{% decrement c %}',
          '{% cycle "a", "b" %}',
          '{% raw %}{{ x }}{% endraw %}',
          '{% comment %}c{% endcomment %}',
          '{% liquid assign z = 1\necho z %}',
          '{% echo lead.name %}',
          '{% tablerow i in (1..3) %}{{ i }}{% endtablerow %}',
        ),
        // Loop and string-doubling bombs: the limits must stop them (rare: each takes the limit).
        {
          arbitrary: fc.constantFrom(
            '{% for a in (1..100000) %}{% for b in (1..100000) %}x{% endfor %}{% endfor %}',
            '{% assign s = "xxxxxxxx" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}',
            '{{ "x" | prepend: "yyyyyyyyyyyyyyyy" | split: "" | join: "zzzzzzzzzzzzzzzzzzzzzzz" }}',
          ),
          weight: 1,
        },
      ),
      { maxLength: 5 },
    )
    .map((parts) => parts.join('')),
}));

const hostileText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    MARKUP,
    '{{ process }}',
    '{% include "/etc/passwd" %}',
    '\u0000',
    '\r\nBcc: x@y.z',
    '"\'><',
  ),
);
const mergeValue = fc.oneof(
  hostileText,
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostileText, { maxLength: 5 }),
  fc.constant('x'.repeat(100_000)),
);
const context = fc
  .record({
    name: mergeValue,
    email: mergeValue,
    tags: mergeValue,
    revenue: mergeValue,
    account: fc.option(fc.record({ name: mergeValue }), { nil: null }),
  })
  .chain((lead) =>
    fc.record({
      lead: fc.constant(lead),
      owner: fc.record({ first_name: hostileText, name: hostileText }),
      org: fc.record({ name: hostileText }),
    }),
  );

// Mostly valid Liquid (so rendering is reached), sometimes broken at random or on purpose.
const part = fc.oneof(
  { arbitrary: source, weight: 12 },
  mutated(source, fc.oneof(broken, fc.constantFrom('{{', '{%', '%}', '}}', '|', '"', '<', '&'))),
);
const template = fc.record({ subject: part, html: fc.oneof(fc.constant(''), part, part), text: part });

function clearError(e: unknown) {
  // Anything other than a validation error naming the part is a crash.
  expect(e).toBeInstanceOf(AppError);
  const err = e as AppError;
  expect(['validation_failed']).toContain(err.code);
  expect(err.message).toMatch(/^The (merged )?(subject|html|text) /);
  expect(err.message.length).toBeLessThan(2_000);
}

function noLeak(out: string) {
  expect(out).not.toContain(SECRET);
  expect(out).not.toContain('[native code]');
  expect(out).not.toMatch(/root:.*:0:0:/); // /etc/passwd
}

describe('fuzz: template renderer', () => {
  it(
    'compiles or refuses, and renders or fails clearly, within the limits and without leaks',
    async () => {
      const counts = { refused: 0, rendered: 0, failed: 0 };
      await fc.assert(
        fc.asyncProperty(template, context, fc.boolean(), async (t, ctx, sync) => {
          await within(LIMIT_MS, 'compile and render', async () => {
            let compiled: ReturnType<typeof compileTemplate>;
            try {
              compiled = compileTemplate(t);
            } catch (e) {
              clearError(e);
              counts.refused++;
              return;
            }
            try {
              const r = sync ? renderCompiledSync(compiled, ctx) : await renderCompiled(compiled, ctx);
              counts.rendered++;
              for (const part of [r.subject, r.html ?? '', r.text]) {
                noLeak(part);
                expect(part.length).toBeLessThanOrEqual(TEMPLATE_LIMITS.output);
              }
              expect(r.subject).not.toMatch(/[\r\n]/);
              // A merge value never writes markup into HTML (unless the author asked for | raw).
              if (r.html !== null && !t.html.includes(MARKUP) && !t.html.includes('raw'))
                expect(r.html).not.toContain(MARKUP);
            } catch (e) {
              clearError(e);
              counts.failed++;
            }
          });
        }),
        fuzzOptions('templates', RUNS, 10_000),
      );
      console.log(
        `fuzz templates: ${RUNS} cases: ${counts.refused} refused at compile, ${counts.rendered} rendered, ${counts.failed} failed at render`,
      );
      // The generator is meant to reach all three outcomes.
      for (const n of Object.values(counts)) expect(n).toBeGreaterThan(RUNS * 0.05);
    },
    FUZZ_TIMEOUT,
  );

  // Regression the fuzzer found: the message quoted a 100 KB merge value whole.
  it('keeps a render error short when a merge value is huge', async () => {
    const compiled = compileTemplate({
      subject: '{{ lead.name.length | where: lead.name }}',
      html: '',
      text: '',
    });
    const render = renderCompiled(compiled, { lead: { name: 'x'.repeat(100_000) } });
    await expect(render).rejects.toBeInstanceOf(AppError);
    const err = (await render.catch((e: unknown) => e)) as AppError;
    expect(err.message.length).toBeLessThan(500);
  });
});
