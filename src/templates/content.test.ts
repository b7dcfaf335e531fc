// Saving a version: CSS inlined and text generated without touching Liquid, errors named, and the
// template's own From / Reply-To validated.
import { describe, expect, it } from 'vitest';
import { decodeLiquidEntities, prepareVersion } from './content.ts';
import { renderCompiled } from './engine.ts';
import { sampleContext } from './merge-context.ts';
import { mergeSchema } from './merge-schema.ts';
import { catalogModules } from './test-modules.ts';

const schema = mergeSchema(catalogModules(), 'leads');
const base = { subject: 'Hello {{ lead.first_name | default: "there" }}', htmlSource: '<p>Hi</p>' };

function errorOf(fn: () => unknown): { message: string; details: { path?: string; message: string }[] } {
  try {
    fn();
  } catch (err) {
    return err as { message: string; details: { path?: string; message: string }[] };
  }
  throw new Error('expected an error');
}

describe('prepareVersion', () => {
  it('inlines CSS with juice and keeps Liquid intact, in text and in attributes', async () => {
    const v = prepareVersion(schema, {
      ...base,
      htmlSource: `<html><head><style>p { color: red } .big { font-size: 20px } @media (max-width: 600px) { p { color: blue } }</style></head>
<body><h1>Hi {{ lead.first_name | default: "there" }}</h1>
<table>{% for t in (1..2) %}<tr><td class="big">{{ t }}</td></tr>{% endfor %}</table>
<p class="big">From {{ lead.company }}</p><a href="https://example.com/?c={{ lead.company | url_encode }}">Visit</a></body></html>`,
    });
    expect(v.html).toContain(
      '<p class="big" style="color: red; font-size: 20px;">From {{ lead.company }}</p>',
    );
    expect(v.html).toContain('<td class="big" style="font-size: 20px;">{{ t }}</td>');
    expect(v.html).toContain('{% for t in (1..2) %}<tr>');
    expect(v.html).toContain('href="https://example.com/?c={{ lead.company | url_encode }}"');
    expect(v.html).toContain('@media (max-width: 600px)'); // media queries stay in a <style>
    expect(v.html_source).toContain('p { color: red }');
    // The text is generated from the HTML: headings keep their case, Liquid survives.
    expect(v.text_generated).toBe(true);
    expect(v.text).toContain('Hi {{ lead.first_name | default: "there" }}');
    expect(v.text).toContain('From {{ lead.company }}');
    const r = await renderCompiled(v.compiled, {
      ...sampleContext(schema, 'empty'),
      lead: { ...(sampleContext(schema, 'empty').lead as object), company: 'A&B <Co>' },
    });
    expect(r.subject).toBe('Hello there');
    expect(r.html).toContain('From A&amp;B &lt;Co&gt;');
    expect(r.html).toContain('?c=A%26B+%3CCo%3E');
    expect(r.text).toContain('Hi there');
    expect(r.text).toContain('From A&B <Co>');
  });

  it("keeps the author's own plain text", () => {
    const v = prepareVersion(schema, { ...base, text: 'Plain {{ lead.last_name }}' });
    expect(v).toMatchObject({ text: 'Plain {{ lead.last_name }}', text_generated: false });
  });

  it('accepts text-only templates and refuses empty ones', () => {
    expect(prepareVersion(schema, { ...base, htmlSource: '', text: 'Only text' })).toMatchObject({
      html: '',
      text: 'Only text',
    });
    expect(errorOf(() => prepareVersion(schema, { ...base, htmlSource: '  ', text: ' ' })).message).toMatch(
      /Write the HTML body or the plain text/,
    );
    expect(errorOf(() => prepareVersion(schema, { ...base, subject: ' ' })).details).toEqual([
      { path: 'subject', message: 'required' },
    ]);
  });

  it('reads Liquid written by a rich-text editor (entities inside tags and outputs)', () => {
    expect(
      decodeLiquidEntities(
        '<p>a &amp; b {% if x &gt; 1 %}{{ y | default: &quot;a&nbsp;b&quot; }}{% endif %}</p>',
      ),
    ).toBe('<p>a &amp; b {% if x > 1 %}{{ y | default: "a b" }}{% endif %}</p>');
    const v = prepareVersion(schema, {
      ...base,
      htmlSource:
        '<p>{% if lead.no_of_employees &gt; 10 %}Big{% endif %} {{ lead.first_name | default: &quot;you&quot; }}</p>',
    });
    expect(v.html).toContain('{% if lead.no_of_employees > 10 %}');
  });

  it('refuses unknown merge fields at save time, naming each one and where it is', () => {
    const e = errorOf(() =>
      prepareVersion(schema, {
        subject: 'Hi {{ lead.frist_name }}',
        htmlSource: '<p>\n{{ lead.compnay }}</p>',
        text: '{{ owner.phone }}',
      }),
    );
    expect(e.message).toBe('Unknown merge fields: lead.frist_name, lead.compnay, owner.phone');
    expect(e.details).toEqual([
      {
        path: 'subject',
        message: '{{ lead.frist_name }} (line 1, column 7): Lead has no field "frist_name"',
      },
      { path: 'htmlSource', message: '{{ lead.compnay }} (line 2, column 4): Lead has no field "compnay"' },
      { path: 'text', message: '{{ owner.phone }} (line 1, column 4): Record owner has no field "phone"' },
    ]);
  });

  it('refuses syntax errors and file tags, naming the part', () => {
    expect(
      errorOf(() => prepareVersion(schema, { ...base, htmlSource: '<p>{% if %}</p>' })).details[0].path,
    ).toBe('htmlSource');
    expect(
      errorOf(() => prepareVersion(schema, { ...base, text: '{% include "/etc/passwd" %}' })).message,
    ).toMatch(/text is not a valid template: \{% include %\} is not available/);
  });

  it('finds runtime failures at save time with a trial merge (loops past the limits)', () => {
    const e = errorOf(() =>
      prepareVersion(schema, { ...base, htmlSource: '{% for i in (1..100000000) %}{{ i }}{% endfor %}' }),
    );
    expect(e.message).toMatch(/The HTML body fails to merge: memory alloc limit exceeded/);
    expect(e.details[0].path).toBe('htmlSource');
  });

  it("validates and normalises the template's own From and Reply-To", () => {
    const v = prepareVersion(schema, {
      ...base,
      fromAddress: ' sales@BÜCHER.example ',
      fromName: '  Sales   Team ',
      replyTo: 'Replies <replies@example.com>',
    });
    expect(v).toMatchObject({
      from_address: 'sales@xn--bcher-kva.example',
      from_name: 'Sales Team',
      reply_to: 'replies@example.com',
    });
    expect(prepareVersion(schema, { ...base, fromAddress: '', replyTo: null })).toMatchObject({
      from_address: null,
      from_name: null,
      reply_to: null,
    });
    expect(
      errorOf(() => prepareVersion(schema, { ...base, fromAddress: 'not-an-address' })).details[0].path,
    ).toBe('fromAddress');
    expect(
      errorOf(() =>
        prepareVersion(schema, { ...base, fromAddress: 'a@b.example', fromName: 'X\r\nBcc: v@x' }),
      ).message,
    ).toMatch(/line break|control/i);
    expect(
      errorOf(() => prepareVersion(schema, { ...base, replyTo: 'a@b.example\r\nBcc: v@x.example' })).message,
    ).toMatch(/line break|control/i);
    expect(
      errorOf(() => prepareVersion(schema, { ...base, replyTo: 'a@b.example, c@d.example' })).message,
    ).toMatch(/expected one address/);
    expect(errorOf(() => prepareVersion(schema, { ...base, fromName: 'Nobody' })).details[0].path).toBe(
      'fromAddress',
    );
  });
});
