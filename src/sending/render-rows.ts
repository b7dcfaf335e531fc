import type { Deps } from '../deps.ts';
import { AppError } from '../errors.ts';
import {
  buildMergeContexts,
  cleanSubject,
  compileTemplate,
  htmlEngine,
  textEngine,
} from '../templates/index.ts';
import { insightsOrgs } from '../tracking/hits/insights-switch.ts';
import { messageTrackingTokens } from '../tracking/tokens.ts';
import type { DeliveryRenderer, DueMessage, RenderedParts } from './delivery.ts';
import {
  compileMerge,
  markTrackingSpots,
  trackingBase,
  trackingMarkup,
  unsubscribeLink,
} from './fast/fast-path.ts';

// Renders message rows queued without content (mass emails, follow-ups, autoresponders, workflow
// emails) when the deliverer claims them: template versions parsed once per process (versions never
// change), merge contexts built per (org, module, sender) group in a fixed number of queries, then
// one render per part per recipient, through the same sandbox as the template editor.

// Per version: each part compiled the fast-path way (fixed text kept as strings, plain merge fields
// read directly, anything else rendered by the same sandboxed liquidjs engines): the output of
// liquidjs exactly (a property test holds it to that), at a fraction of its cost per recipient.
type Merger = ReturnType<typeof compileMerge>;
interface Mergers {
  subject: Merger;
  html: Merger | null;
  /** The HTML with its tracking spots marked (opens, clicks, the trap link), and its links. */
  tracked: { html: Merger; linkCount: number } | null;
  text: Merger;
}
function mergersOf(v: { subject: string; html: string | null; text: string }): Mergers {
  compileTemplate(v); // the templates module's checks (sizes, parse errors) first
  const spots = v.html ? markTrackingSpots(v.html, { clicks: true, opens: true }) : null;
  return {
    subject: compileMerge(textEngine, v.subject),
    html: v.html ? compileMerge(htmlEngine, v.html) : null,
    tracked: spots ? { html: compileMerge(htmlEngine, spots.marked), linkCount: spots.links.length } : null,
    text: compileMerge(textEngine, v.text),
  };
}
const compiled = new Map<string, Mergers>(); // `${templateId}:${version}`
// Bulk mail carries one-click unsubscribe (RFC 8058): an HTTPS URL with a signed opaque token.
const BULK = new Set(['mass', 'autoresponder']);
const MAX_COMPILED = 500;

export const renderTemplateRows: DeliveryRenderer = async (deps: Deps, rows: DueMessage[]) => {
  const out = new Map<string, RenderedParts | Error>();
  const secret = deps.config.secret as string;
  const ready = rows.filter(
    (r) => r.template_id && r.template_version !== null && r.record_id && r.module_id,
  );
  for (const r of rows)
    if (!ready.includes(r)) out.set(r.id, new Error('no template and record to render from'));
  if (ready.length === 0) return out;

  const keys = [...new Set(ready.map((r) => `${r.template_id}:${r.template_version}`))];
  const missing = keys.filter((k) => !compiled.has(k));
  if (missing.length) {
    const versions = await deps.db
      .selectFrom('template_versions')
      .select(['template_id', 'version', 'subject', 'html', 'text'])
      .where((eb) =>
        eb.or(
          missing.map((k) => {
            const [id, v] = k.split(':');
            return eb.and([eb('template_id', '=', id), eb('version', '=', Number(v))]);
          }),
        ),
      )
      .execute();
    if (compiled.size + versions.length > MAX_COMPILED) compiled.clear();
    for (const v of versions) compiled.set(`${v.template_id}:${v.version}`, mergersOf(v));
  }
  // Template versions are checked against their org below: a row can only use its own org's.
  const versionOrg = new Map(
    (
      await deps.db
        .selectFrom('templates')
        .select(['id', 'org_id'])
        .where('id', 'in', [...new Set(ready.map((r) => r.template_id as string))])
        .execute()
    ).map((t) => [t.id, t.org_id]),
  );

  // Insights (opens and clicks) per org: on unless an admin turned them off.
  const insights = await insightsOrgs(deps, [...new Set(ready.map((r) => r.org_id))]);
  const base = trackingBase(deps.config.publicUrl);

  const modules = new Map(
    (
      await deps.db
        .selectFrom('modules')
        .select(['id', 'api_name'])
        .where('id', 'in', [...new Set(ready.map((r) => r.module_id as string))])
        .execute()
    ).map((m) => [m.id, m.api_name]),
  );
  const groups = new Map<string, DueMessage[]>();
  for (const r of ready) {
    const k = `${r.org_id}|${r.module_id}|${r.sender_id ?? ''}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const group of groups.values()) {
    const first = group[0];
    let contexts: Awaited<ReturnType<typeof buildMergeContexts>>;
    try {
      contexts = await buildMergeContexts(deps, first.org_id, {
        moduleApiName: modules.get(first.module_id as string) ?? '',
        recordIds: group.map((r) => r.record_id as string),
        senderUserId: first.sender_id,
      });
    } catch (err) {
      // The database failing is not the rows' fault: the whole render fails, and is tried again.
      if (!(err instanceof AppError)) throw err;
      for (const r of group) out.set(r.id, new Error(`merge failed: ${(err as Error).message}`));
      continue;
    }
    for (const r of group) {
      const c = compiled.get(`${r.template_id}:${r.template_version}`);
      const ctx = contexts.get(r.record_id as string);
      if (!c || versionOrg.get(r.template_id as string) !== r.org_id) {
        out.set(r.id, new Error('its template version no longer exists'));
        continue;
      }
      if (!ctx) {
        out.set(r.id, new Error('its record no longer exists'));
        continue;
      }
      try {
        const t = insights.has(r.org_id) ? c.tracked : null;
        const bulk = BULK.has(r.kind);
        // One derivation gives the message's unsubscribe, pixel and click tokens.
        const tokens = t || bulk ? messageTrackingTokens(secret, r.id, (t?.linkCount ?? 0) + 1) : null;
        out.set(r.id, {
          subject: cleanSubject(c.subject(ctx)),
          html:
            t && tokens
              ? t.html(ctx, trackingMarkup(base, tokens, t.linkCount))
              : c.html
                ? c.html(ctx)
                : null,
          tracked: !!t,
          text: c.text(ctx),
          ...(bulk && tokens
            ? {
                listUnsubscribe: {
                  url: unsubscribeLink(deps.config.publicUrl, tokens.unsubscribe),
                  post: true,
                },
              }
            : {}),
        });
      } catch (err) {
        out.set(r.id, new Error(`merge failed: ${(err as Error).message}`));
      }
    }
  }
  return out;
};
