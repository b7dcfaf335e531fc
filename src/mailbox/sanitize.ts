// Received HTML made safe to show. Shown in an iframe with sandbox="" (no scripts, no forms, an
// opaque origin) whose own Content-Security-Policy repeats the rules below, so either alone holds.
// Remote content (images, fonts, CSS backgrounds) tells the sender the mail was read: it stays out
// unless the user asks, and even then the browser fetches it, never the server.
import sanitizeHtml from 'sanitize-html';

export interface SanitizeOptions {
  /** Keep remote (http/https) images, backgrounds and fonts: the user asked for them. */
  images: boolean;
  /** The URL serving an inline (cid:) image, by its Content-ID with angle brackets; null: drop it. */
  cidUrl: (contentId: string) => string | null;
}

export interface SanitizedMail {
  html: string;
  /** How many remote images, backgrounds or fonts were left out (the "Show remote images" button). */
  blocked: number;
}

const TAGS = [
  ...sanitizeHtml.defaults.allowedTags,
  'img',
  'center',
  'font',
  'span',
  'div',
  'table',
  'thead',
  'tbody',
  'tfoot',
  'tr',
  'td',
  'th',
  'colgroup',
  'col',
  'caption',
  'hr',
  'br',
  'style',
  'u',
  's',
  'strike',
  'sub',
  'sup',
];

const ATTRS: sanitizeHtml.IOptions['allowedAttributes'] = {
  '*': [
    'style',
    'align',
    'valign',
    'width',
    'height',
    'bgcolor',
    'color',
    'dir',
    'lang',
    'title',
    'class',
    'id',
  ],
  a: ['href', 'name', 'target', 'rel'],
  img: ['src', 'srcset', 'alt', 'width', 'height', 'border'],
  table: ['border', 'cellpadding', 'cellspacing', 'role', 'background'],
  td: ['colspan', 'rowspan', 'nowrap', 'background'],
  th: ['colspan', 'rowspan', 'nowrap', 'scope', 'background'],
  font: ['face', 'size', 'color'],
};

const REMOTE = /^\s*(https?:)?\/\//i;
const DATA_IMAGE = /^\s*data:image\/(png|gif|jpe?g|webp|bmp|avif);/i;

/** CSS escapes (u\72 l, \75rl) decoded, so the filters below see what the browser will. */
function unescapeCss(css: string): string {
  return css
    .replace(/\\([0-9a-f]{1,6})\s?/gi, (_, h: string) => {
      const n = Number.parseInt(h, 16);
      return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : '';
    })
    .replace(/\\(.)/g, '$1')
    .replace(/\/\*[\s\S]*?\*\//g, '');
}

/**
 * CSS from a style attribute or a <style> block: no scripts in any form (expression(), behavior,
 * -moz-binding, javascript:), no @import, and url() only to an inline image, or to a remote one
 * when images are wanted. image-set() and the like go: their bare strings would load too.
 */
function cleanCss(css: string, opts: SanitizeOptions, count: { n: number }): string {
  // Kept url()s are marked while every other url( is blocked, then unmarked.
  const KEPT = '\u0001(';
  const keep = (u: string) => `\u0001("${u}")`;
  return (
    unescapeCss(css.replaceAll('\u0001', ''))
      // "<" has no use in CSS, and in a <style> it could be read as markup by a confused parser.
      .replace(/</g, '')
      .replace(/@import[^;]*;?/gi, '')
      .replace(/expression\s*\(|behavior\s*:|-moz-binding|javascript\s*:|vbscript\s*:/gi, 'blocked')
      .replace(/(-webkit-)?(image-set|image|cross-fade|element|src)\s*\(/gi, 'blocked(')
      .replace(/url\s*\(\s*(['"]?)([^'")]*)\1\s*\)/gi, (_all, _q, url: string) => {
        const u = url.trim();
        if (DATA_IMAGE.test(u)) return keep(u.replace(/["\\\n]/g, ''));
        if (/^cid:/i.test(u)) {
          const to = opts.cidUrl(`<${u.slice(4)}>`);
          return to ? keep(to) : 'none';
        }
        if (/^https?:\/\//i.test(u) && !/["\\\n]/.test(u)) {
          if (opts.images) return keep(u);
          count.n++;
        }
        return 'none';
      })
      .replace(/url\s*\(/gi, 'blocked(')
      .replaceAll(KEPT, 'url(')
  );
}

/** Received HTML without anything that runs, submits, navigates the page or (unless asked) fetches. */
export function sanitizeMailHtml(html: string, opts: SanitizeOptions): SanitizedMail {
  const count = { n: 0 };
  const src = (value: string): string | null => {
    if (DATA_IMAGE.test(value)) return value.trim();
    if (/^\s*cid:/i.test(value)) return opts.cidUrl(`<${value.trim().slice(4)}>`);
    if (REMOTE.test(value) && /^\s*https?:/i.test(value)) {
      if (opts.images) return value.trim();
      count.n++;
    }
    return null;
  };
  const out = sanitizeHtml(html, {
    allowedTags: TAGS,
    // <style> is kept, its text cleaned below: email layouts depend on it.
    allowVulnerableTags: true,
    allowedAttributes: ATTRS,
    allowedSchemes: ['http', 'https', 'mailto', 'tel'],
    allowedSchemesByTag: { img: ['http', 'https', 'data', 'cid'] },
    allowedSchemesAppliedToAttributes: ['href', 'src', 'cite', 'background'],
    allowProtocolRelative: false,
    disallowedTagsMode: 'discard',
    // Text that is not part of the message as read (the <title> of a newsletter, <noscript> fallbacks).
    nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'title'],
    transformTags: {
      a: (tagName, attribs) => ({
        tagName,
        attribs: { ...attribs, target: '_blank', rel: 'noopener noreferrer' },
      }),
      img: (tagName, attribs) => {
        const { src: s, srcset, style, ...rest } = attribs;
        const kept = s ? src(s) : null;
        // A srcset is only ever remote candidates worth keeping when images are asked for.
        const set = srcset
          ? srcset
              .split(',')
              .map((c) => c.trim())
              .filter((c) => {
                const ok = src(c.split(/\s+/)[0] ?? '');
                return ok !== null && REMOTE.test(c);
              })
              .join(', ')
          : '';
        const attribsOut: Record<string, string> = { ...rest };
        if (kept) attribsOut.src = kept;
        if (set) attribsOut.srcset = set;
        if (style) attribsOut.style = style;
        return { tagName, attribs: attribsOut };
      },
      '*': (tagName, attribs) => {
        const a = { ...attribs };
        if (a.background) {
          const kept = src(a.background);
          if (kept) a.background = kept;
          else delete a.background;
        }
        return { tagName, attribs: a };
      },
    },
    // Inline images with no source left are dropped rather than shown as broken boxes.
    exclusiveFilter: (frame) => frame.tag === 'img' && !frame.attribs.src && !frame.attribs.srcset,
  });
  // Only sanitize-html's own output is parsed here: text is escaped there, so "<style>" and
  // style="…" appear only as the real tag and attribute.
  const html2 = out
    .replace(
      /<style\b([^>]*)>([\s\S]*?)<\/style>/gi,
      (_a, at: string, css: string) => `<style${at}>${cleanCss(css, opts, count)}</style>`,
    )
    .replace(/ style="([^"]*)"/g, (_a, css: string) => {
      const decoded = css
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'")
        .replace(/&amp;/g, '&');
      const cleaned = cleanCss(decoded, opts, count).replace(/&/g, '&amp;').replace(/"/g, '&quot;');
      return ` style="${cleaned}"`;
    });
  return { html: html2, blocked: count.n };
}

/** The policy the frame's document carries: nothing runs; images only from where they may come. */
export function mailCsp(images: boolean, attachmentOrigin: string): string {
  const img = ['data:', attachmentOrigin, ...(images ? ['http:', 'https:'] : [])].join(' ');
  return [
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    `img-src ${img}`,
    `font-src data:${images ? ' http: https:' : ''}`,
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/** A whole document for the frame's srcdoc. */
export function mailDocument(html: string, images: boolean, attachmentOrigin: string): string {
  const csp = mailCsp(images, attachmentOrigin).replace(/"/g, '&quot;');
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${csp}"></head><body>${html}</body></html>`;
}
