import type { FastifyInstance } from 'fastify';
import type { Deps } from '../../deps.ts';
import { maskAddress, unsubscribe, unsubscribeTarget } from '../../tracking/unsubscribe.ts';
import { acceptForms, escapeHtml, htmlPage, plainPage } from '../plain-pages.ts';

// The unsubscribe endpoint of List-Unsubscribe (RFC 8058) and of the visible link. GET only shows
// a confirmation page (link scanners follow GETs); POST unsubscribes, with or without a body, from
// a mail client's one-click (form-urlencoded or multipart) or the page's button. No cookie, no
// redirect, no sign-in: the signed token is the only input that counts.
export function unsubscribeRoutes(app: FastifyInstance, deps: Deps) {
  app.register(async (scope) => {
    // One-click bodies are "List-Unsubscribe=One-Click"; their content does not matter here.
    acceptForms(scope);
    scope.get<{ Params: { token: string } }>('/u/:token', { schema: { hide: true } }, async (req, reply) => {
      plainPage(reply);
      const t = await unsubscribeTarget(deps, req.params.token);
      if (!t)
        return reply
          .status(404)
          .send(htmlPage('Link not valid', '<p>This unsubscribe link is not valid.</p>'));
      return htmlPage(
        `Unsubscribe from ${t.orgName}`,
        `<p>Stop email from ${escapeHtml(t.orgName)} to ${escapeHtml(maskAddress(t.address))}?</p>` +
          `<form method="post" action="/u/${escapeHtml(req.params.token)}"><input type="hidden" name="List-Unsubscribe" value="One-Click">` +
          '<button type="submit">Unsubscribe</button></form>',
      );
    });
    scope.post<{ Params: { token: string } }>('/u/:token', { schema: { hide: true } }, async (req, reply) => {
      plainPage(reply);
      const t = await unsubscribeTarget(deps, req.params.token);
      if (!t)
        return reply
          .status(404)
          .send(htmlPage('Link not valid', '<p>This unsubscribe link is not valid.</p>'));
      await unsubscribe(deps, t);
      return htmlPage(
        'You are unsubscribed',
        `<p>${escapeHtml(t.orgName)} will not send email to ${escapeHtml(maskAddress(t.address))} again.</p>`,
      );
    });
  });
}
