// What happens to a template version when it is saved: Liquid checked (syntax, then every merge
// field against the module's schema), CSS inlined with juice, the plain text generated from the
// HTML with html-to-text when the author wrote none, a trial merge with sample and with empty
// values, and the template's own From / Reply-To validated. Whatever would fail at send time fails
// here, with the part, the line and the field named.
import { convert } from 'html-to-text';
import juice from 'juice';
import { type ErrorDetail, invalid } from '../errors.ts';
import { mailbox, parseAddress } from '../sending/address.ts';
import {
  type CompiledTemplate,
  compileTemplate,
  liquidMessage,
  renderCompiledSync,
  type TemplatePart,
} from './engine.ts';
import { sampleContext } from './merge-context.ts';
import { type MergeSchema, unknownMergeFields } from './merge-schema.ts';

export interface VersionInput {
  subject: string;
  /** The HTML as the author wrote it (may hold <style> blocks); '' for a text-only template. */
  htmlSource: string;
  /** The author's plain text; empty or absent: generated from the HTML. */
  text?: string | null;
  fromAddress?: string | null;
  fromName?: string | null;
  replyTo?: string | null;
}

/** A checked version, in the columns of template_versions, and compiled. */
export interface PreparedVersion {
  subject: string;
  html_source: string;
  html: string;
  text: string;
  text_generated: boolean;
  from_address: string | null;
  from_name: string | null;
  reply_to: string | null;
  compiled: CompiledTemplate;
}

/** API field names of the parts, for error details. */
const FIELD: Record<TemplatePart, string> = { subject: 'subject', html: 'htmlSource', text: 'text' };

// Juice must leave Liquid alone: its code blocks are kept verbatim, in text and in attributes.
// Juice knows {{ … }} already (as HBS); its list of code blocks is global, so {% … %} is added once.
juice.codeBlocks.LIQUID_TAG = { start: '{%', end: '%}' };
const JUICE_OPTIONS: juice.Options = {
  removeStyleTags: true,
  preserveMediaQueries: true,
  preserveFontFaces: true,
  applyWidthAttributes: true,
  applyHeightAttributes: true,
};

// html-to-text must not change Liquid either: no upper-casing of headings (that would turn
// {{ lead.name }} into {{ LEAD.NAME }}), no wrapping inside a tag, and tables as plain lines (its
// table formats drop text between rows, where `{% for %}` over rows sits).
const TEXT_OPTIONS: Parameters<typeof convert>[1] = {
  wordwrap: false,
  formatters: {
    cell: (elem, walk, builder) => {
      walk(elem.children, builder);
      builder.addInline(' ');
    },
  },
  selectors: [
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
    { selector: 'table', format: 'block' },
    { selector: 'tr', format: 'block', options: { leadingLineBreaks: 1, trailingLineBreaks: 1 } },
    { selector: 'th', format: 'cell' },
    { selector: 'td', format: 'cell' },
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
    { selector: 'img', format: 'skip' },
  ],
};

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
const LIQUID_BLOCK = /\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}/g;

/**
 * Inside {{ … }} and {% … %} of an HTML source, HTML entities become the characters they stand for:
 * a rich-text editor writes `{% if a &gt; 1 %}` and `default: &quot;there&quot;`, which Liquid
 * would not understand. Outside Liquid, the HTML is left exactly as written.
 */
export function decodeLiquidEntities(html: string): string {
  return html.replace(LIQUID_BLOCK, (block) =>
    block
      .replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e: string) => {
        if (e[0] !== '#') return ENTITIES[e.toLowerCase()] ?? m;
        const n =
          e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
        return n === 0xa0 ? ' ' : n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : m;
      })
      .replace(/\u00a0/g, ' '),
  );
}

function compileChecked(
  schema: MergeSchema,
  parts: { subject: string; html: string | null; text: string },
  stage: string,
): CompiledTemplate {
  let compiled: CompiledTemplate;
  try {
    compiled = compileTemplate(parts);
  } catch (err) {
    const e = err as { details?: ErrorDetail[]; message: string };
    const details = (e.details ?? []).map((d) => ({ ...d, path: FIELD[d.path as TemplatePart] ?? d.path }));
    throw invalid(`${e.message}${stage}`, details);
  }
  const unknown = unknownMergeFields(schema, compiled);
  if (unknown.length) {
    const names = [...new Set(unknown.map((u) => u.path))];
    throw invalid(
      `Unknown merge field${names.length > 1 ? 's' : ''}: ${names.join(', ')}${stage}`,
      unknown.map((u) => ({
        path: FIELD[u.part],
        message: `{{ ${u.path} }} (line ${u.line}, column ${u.column}): ${u.reason}`,
      })),
    );
  }
  return compiled;
}

function optionalText(v: string | null | undefined): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw invalid('Expected text');
  const s = v.trim();
  return s ? s : null;
}

function addresses(input: VersionInput) {
  const fromAddress = optionalText(input.fromAddress);
  const fromName = optionalText(input.fromName);
  const replyTo = optionalText(input.replyTo);
  if (fromName && !fromAddress)
    throw invalid('A From name needs a From address', [
      { path: 'fromAddress', message: 'required with a name' },
    ]);
  const from = fromAddress ? mailbox(fromAddress, fromName, 'fromAddress') : null;
  return {
    from_address: from?.address ?? null,
    from_name: from?.name ?? null,
    // Reply-To is stored as a bare address; `Name <address>` as typed is accepted.
    reply_to: replyTo ? parseAddress(replyTo, 'replyTo').address : null,
  };
}

/** Checks and prepares one version for saving (see the top of this file). */
export function prepareVersion(schema: MergeSchema, input: VersionInput): PreparedVersion {
  if (typeof input.subject !== 'string' || !input.subject.trim())
    throw invalid('The subject is required', [{ path: 'subject', message: 'required' }]);
  if (typeof input.htmlSource !== 'string')
    throw invalid('The HTML body must be text', [{ path: 'htmlSource', message: 'must be text' }]);
  const subject = input.subject.trim();
  const htmlSource = input.htmlSource;
  const authorText = optionalText(input.text) === null ? null : String(input.text);
  if (!htmlSource.trim() && authorText === null)
    throw invalid('Write the HTML body or the plain text', [{ path: 'htmlSource', message: 'required' }]);
  const from = addresses(input);

  // 1. The source as written: syntax and merge fields, with the author's own line numbers.
  const source = decodeLiquidEntities(htmlSource);
  compileChecked(schema, { subject, html: source.trim() ? source : null, text: authorText ?? '' }, '');

  // 2. CSS inlined, text generated, and the result checked again (nothing was lost on the way).
  let html = '';
  if (source.trim()) {
    try {
      html = juice(source, JUICE_OPTIONS);
    } catch (err) {
      throw invalid(`The HTML's CSS could not be inlined: ${(err as Error).message}`, [
        { path: 'htmlSource', message: 'CSS could not be inlined' },
      ]);
    }
  }
  const text = authorText ?? convert(html, TEXT_OPTIONS);
  const compiled = compileChecked(
    schema,
    { subject, html: html || null, text },
    authorText === null ? ' (in the plain text generated from the HTML: write the plain text yourself)' : '',
  );

  // 3. A trial merge with sample values and with empty ones: runtime errors (a filter given the
  // wrong argument, a loop past the limits) show now rather than when a message is sent.
  for (const mode of ['sample', 'empty'] as const) {
    try {
      renderCompiledSync(compiled, sampleContext(schema, mode));
    } catch (err) {
      const e = err as { details?: ErrorDetail[] };
      const d = e.details?.[0];
      const part = (d?.path as TemplatePart) ?? 'html';
      const msg = d?.message ?? liquidMessage(err);
      throw invalid(
        `The ${part === 'html' ? 'HTML body' : part} fails to merge${mode === 'empty' ? ' when fields are empty' : ''}: ${msg}`,
        [{ path: FIELD[part] ?? part, message: msg }],
      );
    }
  }
  return {
    subject,
    html_source: htmlSource,
    html,
    text,
    text_generated: authorText === null,
    ...from,
    compiled,
  };
}
