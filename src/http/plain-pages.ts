// Small server-rendered pages opened from links in email (unsubscribe, address confirmations):
// no sign-in, no scripts, no cookie; the token in the link is the only input that counts.
import type { FastifyInstance, FastifyReply } from 'fastify';

export const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );

/** A whole page; bodyHtml is trusted markup (escape what goes into it). */
export const htmlPage = (title: string, bodyHtml: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
  `<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>` +
  '<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1.2rem}</style>' +
  `</head><body><h1>${escapeHtml(title)}</h1>${bodyHtml}</body></html>`;

const CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'";

/** Headers of every such page: nothing loads, forms post only back here, nothing is cached. */
export const plainPage = (reply: FastifyReply) =>
  reply.header('content-security-policy', CSP).header('cache-control', 'no-store').type('text/html');

/** Form posts (a page's button, a mail client's one-click): the body is read as a string. */
export function acceptForms(scope: FastifyInstance) {
  for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data'])
    scope.addContentTypeParser(type, { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) =>
      done(null, body),
    );
}

/**
 * A confirmation link: GET only asks (link scanners and previews follow GETs, and must not confirm
 * anything), the page's button POSTs the token, and that confirms. confirm answers the message
 * shown on success, or throws an error whose message says why the link does not work.
 */
export function confirmationLink(
  app: FastifyInstance,
  path: string,
  texts: { question: string; done: string },
  confirm: (token: string) => Promise<string>,
) {
  app.register(async (scope) => {
    acceptForms(scope);
    scope.get<{ Querystring: { token?: string } }>(path, { schema: { hide: true } }, async (req, reply) => {
      plainPage(reply);
      const token = typeof req.query.token === 'string' ? req.query.token.slice(0, 200) : '';
      return htmlPage(
        texts.question,
        `<form method="post" action="${escapeHtml(path)}"><input type="hidden" name="token" value="${escapeHtml(token)}">` +
          '<button type="submit">Confirm</button></form>',
      );
    });
    scope.post(path, { schema: { hide: true } }, async (req, reply) => {
      plainPage(reply);
      const token = new URLSearchParams(typeof req.body === 'string' ? req.body : '').get('token') ?? '';
      try {
        return htmlPage(texts.done, `<p>${escapeHtml(await confirm(token.slice(0, 200)))}</p>`);
      } catch (e) {
        return reply
          .status(400)
          .send(htmlPage('This link does not work', `<p>${escapeHtml((e as Error).message)}</p>`));
      }
    });
  });
}
