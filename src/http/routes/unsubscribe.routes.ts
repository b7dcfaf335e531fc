import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';
import { maskAddress, unsubscribe, unsubscribeTarget } from '../../tracking/unsubscribe.ts';

const esc = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
  `<meta name="robots" content="noindex"><title>${esc(title)}</title>` +
  '<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1.2rem}</style>' +
  `</head><body><h1>${esc(title)}</h1>${body}</body></html>`;
const CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'";

// The unsubscribe endpoint of List-Unsubscribe (RFC 8058) and of the visible link. GET only shows
// a confirmation page (link scanners follow GETs); POST unsubscribes, with or without a body, from
// a mail client's one-click (form-urlencoded or multipart) or the page's button. No cookie, no
// redirect, no sign-in: the signed token is the only input that counts.
export function unsubscribeRoutes(app: FastifyInstance, deps: Deps) {
  app.register(async (scope) => {
    // One-click bodies are "List-Unsubscribe=One-Click"; their content does not matter here.
    for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data'])
      scope.addContentTypeParser(type, { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) =>
        done(null, body),
      );
    scope.get<{ Params: { token: string } }>('/u/:token', { schema: { hide: true } }, async (req, reply) => {
      reply.header('content-security-policy', CSP).header('cache-control', 'no-store').type('text/html');
      const t = await unsubscribeTarget(deps, req.params.token);
      if (!t)
        return reply.status(404).send(page('Link not valid', '<p>This unsubscribe link is not valid.</p>'));
      return page(
        `Unsubscribe from ${t.orgName}`,
        `<p>Stop email from ${esc(t.orgName)} to ${esc(maskAddress(t.address))}?</p>` +
          `<form method="post" action="/u/${esc(req.params.token)}"><input type="hidden" name="List-Unsubscribe" value="One-Click">` +
          '<button type="submit">Unsubscribe</button></form>',
      );
    });
    scope.post<{ Params: { token: string } }>('/u/:token', { schema: { hide: true } }, async (req, reply) => {
      reply.header('content-security-policy', CSP).header('cache-control', 'no-store').type('text/html');
      const t = await unsubscribeTarget(deps, req.params.token);
      if (!t)
        return reply.status(404).send(page('Link not valid', '<p>This unsubscribe link is not valid.</p>'));
      await unsubscribe(deps, t);
      return page(
        'You are unsubscribed',
        `<p>${esc(t.orgName)} will not send email to ${esc(maskAddress(t.address))} again.</p>`,
      );
    });
  });
}
