import { describe, expect, it } from 'vitest';
import { mailCsp, mailDocument, sanitizeMailHtml } from './sanitize.ts';

const cidUrl = (cid: string) => (cid === '<logo@x>' ? '/api/mail/attachments/att-1?sig=s' : null);
const clean = (html: string, images = false) => sanitizeMailHtml(html, { images, cidUrl });

describe('sanitizeMailHtml', () => {
  it.each([
    ['<script>alert(1)</script><p>hi</p>', /script|alert/i],
    ['<img src=x onerror="alert(1)">', /onerror|alert/i],
    ['<p onclick="alert(1)" onmouseover=alert(2)>x</p>', /on(click|mouseover)|alert/i],
    ['<a href="javascript:alert(1)">x</a>', /javascript/i],
    ['<a href="JaVaScRiPt&#58;alert(1)">x</a>', /alert/i],
    ['<a href=" &#14; javascript:alert(1)">x</a>', /alert/i],
    ['<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>', /data:/i],
    ['<a href="vbscript:msgbox(1)">x</a>', /vbscript/i],
    [
      '<form action="https://evil.example/"><input name="p"><button>Go</button></form>',
      /<form|<input|<button/i,
    ],
    ['<iframe src="https://evil.example/"></iframe>', /iframe|evil/i],
    ['<object data="x.swf"></object><embed src="x.swf">', /object|embed|swf/i],
    ['<meta http-equiv="refresh" content="0;url=https://evil.example/">', /meta|refresh|evil/i],
    ['<svg><script>alert(1)</script></svg>', /svg|script|alert/i],
    ['<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>', /<img/i],
    ['<base href="https://evil.example/">', /base|evil/i],
    ['<link rel="stylesheet" href="https://evil.example/x.css">', /link|evil/i],
    ['<p style="width: expression(alert(1))">x</p>', /expression/i],
    ['<p style="behavior: url(x.htc); -moz-binding: url(x.xml#y)">x</p>', /htc|binding|x\.xml/i],
    ['<style>@import url("https://evil.example/x.css"); p{color:red}</style>', /@import|evil/i],
    ['<style>p{background:u\\72l(https://evil.example/t.gif)}</style>', /evil/i],
    [
      '<div style="background-image: image-set(&quot;https://evil.example/a.png&quot; 1x)">x</div>',
      /image-set/i,
    ],
    ['<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">', /svg\+xml/i],
    ['<textarea><img src=x onerror=alert(1)></textarea>', /onerror|alert/i],
  ])('removes what runs or leaks: %s', (hostile, bad) => {
    const out = clean(hostile, !/evil\.example\/t\.gif/.test(hostile)).html;
    expect(out).not.toMatch(bad);
  });

  it('keeps the content and layout of ordinary mail, and opens links in a new tab without an opener', () => {
    const out = clean(
      '<html><head><title>Weekly news</title></head><body><noscript>Enable JS</noscript><table cellpadding="4"><tr><td style="color: #333; font-weight: bold">Hi <a href="https://ok.example/x?a=1&amp;b=2">link</a></td></tr></table><style>td { padding: 2px }</style>',
    ).html;
    expect(out).toContain('<td style="color:#333;font-weight:bold">Hi');
    expect(out).toContain('href="https://ok.example/x?a=1&amp;b=2"');
    expect(out).toContain('target="_blank"');
    expect(out).toContain('rel="noopener noreferrer"');
    expect(out).toContain('<style>td { padding: 2px }</style>');
    expect(out).not.toMatch(/Weekly news|Enable JS/);
  });

  it('leaves remote images, srcsets, backgrounds and CSS urls out until asked, and counts them', () => {
    const html =
      '<img src="https://track.example/pixel.gif" alt="p"><img srcset="https://cdn.example/a.png 1x, https://cdn.example/b.png 2x">' +
      '<td background="http://cdn.example/bg.png">x</td><div style="background: url(\'https://cdn.example/bg2.png\')">y</div>' +
      '<style>body { background-image: url(https://cdn.example/bg3.png) }</style><img src="//cdn.example/proto.png">';
    const off = clean(html);
    expect(off.html).not.toMatch(/cdn\.example|track\.example/);
    expect(off.blocked).toBeGreaterThanOrEqual(5);
    const on = clean(html, true);
    expect(on.html).toContain('src="https://track.example/pixel.gif"');
    expect(on.html).toContain('https://cdn.example/b.png 2x');
    expect(on.html).toContain('url(&quot;https://cdn.example/bg2.png&quot;)');
    expect(on.html).toContain('url("https://cdn.example/bg3.png")');
    expect(on.html).toContain('background="http://cdn.example/bg.png"');
    // Protocol-relative URLs are never kept.
    expect(on.html).not.toContain('proto.png');
  });

  it('points cid: images at the attachment endpoint and keeps inline data: images', () => {
    const out = clean(
      '<img src="cid:logo@x"><img src="cid:unknown@x"><img src="data:image/png;base64,iVBORw0KGgo=">' +
        '<div style="background:url(cid:logo@x)">z</div>',
    ).html;
    expect(out).toContain('<img src="/api/mail/attachments/att-1?sig=s" />');
    expect(out).not.toContain('unknown');
    expect(out).toContain('src="data:image/png;base64,iVBORw0KGgo="');
    expect(out).toContain('url(&quot;/api/mail/attachments/att-1?sig=s&quot;)');
  });
});

describe('mailDocument', () => {
  it('carries a policy that allows no scripts and remote images only when asked', () => {
    expect(mailCsp(false, 'https://crm.example')).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; img-src data: https://crm.example; font-src data:; form-action 'none'; base-uri 'none'",
    );
    expect(mailCsp(true, 'https://crm.example')).toContain('img-src data: https://crm.example http: https:');
    expect(mailDocument('<p>x</p>', false, 'https://crm.example')).toContain(
      `<meta http-equiv="Content-Security-Policy" content="default-src 'none';`,
    );
  });
});
