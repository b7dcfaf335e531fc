import { type Expression, type RawBuilder, type SqlBool, sql } from 'kysely';
import { type Actor, type ModuleMeta, recordFilter, requireModule, type Scope, scope } from '../crm/index.ts';
import type { AudienceSpec, ExclusionReason } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { invalid } from '../errors.ts';

// Who a mass email goes to (F3.3). One SQL statement classifies every chosen record: it either
// receives the message or is left out with exactly one reason, in this order of precedence:
// no address, invalid address, Email Opt Out, suppressed, duplicate (one address, one message).
// The same statement serves the preview counts, the per-reason lists and the materialisation of
// recipients, so what the user was shown is what gets sent.

export const EXCLUSION_REASONS: ExclusionReason[] = [
  'no_address',
  'invalid_address',
  'opted_out',
  'suppressed',
  'duplicate',
];

export interface AudienceCounts {
  recipients: number;
  excluded: Record<ExclusionReason, number>;
  excludedTotal: number;
}

/** Where a module's recipient address lives: its own email field, or (Deals) the deal's contact's. */
export interface RecipientPath {
  join: RawBuilder<unknown>;
  email: RawBuilder<string | null>;
  optOut: RawBuilder<boolean>;
  name: RawBuilder<string | null>;
}

export function recipientPath(s: Scope): RecipientPath {
  const emailField = (m: ModuleMeta) =>
    m.fields.find((f) => f.apiName === 'email' && f.type === 'email') ??
    m.fields.find((f) => f.type === 'email');
  const own = emailField(s.mod);
  const nameOf = (alias: string) =>
    sql<
      string | null
    >`NULLIF(btrim(concat_ws(' ', ${sql.ref(`${alias}.data`)} ->> 'first_name', ${sql.ref(`${alias}.data`)} ->> 'last_name')), '')`;
  if (own)
    return {
      join: sql``,
      email: sql<string | null>`r.data ->> ${own.apiName}`,
      optOut: sql<boolean>`coalesce((r.data ->> 'email_opt_out')::boolean, false)`,
      name: nameOf('r'),
    };
  const contactLookup = s.mod.fields.find(
    (f) => f.type === 'lookup' && (f.options as { module?: string }).module === 'contacts',
  );
  const contacts = s.modules.get('contacts');
  if (s.mod.apiName === 'deals' && contactLookup && contacts && emailField(contacts))
    return {
      join: sql`LEFT JOIN records c ON c.org_id = r.org_id AND c.id = (r.data ->> ${contactLookup.apiName})::uuid`,
      email: sql<string | null>`c.data ->> 'email'`,
      optOut: sql<boolean>`coalesce((c.data ->> 'email_opt_out')::boolean, false)`,
      name: nameOf('c'),
    };
  throw invalid(
    `${s.mod.pluralLabel} cannot receive mass email: the module has no email field (Leads, Contacts, Deals and modules with an email field can)`,
  );
}

function sourceFilter(source: AudienceSpec | null): { viewId?: string; criteria?: unknown; ids?: string[] } {
  if (source === null) return {}; // a follow-up: its records come from `extra`
  switch (source.kind) {
    case 'ids':
      if (!Array.isArray(source.ids) || source.ids.length === 0)
        throw invalid('Select at least one record', [{ path: 'audience.ids', message: 'empty' }]);
      if (source.ids.length > 10_000)
        throw invalid('Select at most 10,000 records; use a view or criteria for more', [
          { path: 'audience.ids', message: 'too many' },
        ]);
      return { ids: source.ids };
    case 'view':
      return { viewId: source.viewId };
    case 'criteria':
      if (source.criteria === undefined || source.criteria === null)
        throw invalid('Enter criteria', [{ path: 'audience.criteria', message: 'required' }]);
      return { criteria: source.criteria };
    default:
      throw invalid('audience.kind must be ids, view or criteria');
  }
}

export interface ResolvedAudience {
  scope: Scope;
  /** SELECT record_id, email (lower-cased), name, reason (NULL for a recipient) — one row per record. */
  query: RawBuilder<{
    record_id: string;
    email: string | null;
    name: string | null;
    reason: ExclusionReason | null;
  }>;
}

/**
 * Builds the classifying query for a module and a source of records. `extra` narrows it further
 * (a follow-up's "records to ignore", or its parent's recipients).
 */
export async function resolveAudience(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  source: AudienceSpec | null,
  extra: Expression<SqlBool>[] = [],
): Promise<ResolvedAudience> {
  requireModule(actor, moduleName, 'mass_email');
  const s = await scope(deps, actor, moduleName);
  const path = recipientPath(s);
  const { where } = await recordFilter(deps, actor, s, sourceFilter(source));
  const conditions = sql.join([...where, ...extra], sql` AND `);
  // A permissive syntactic check: values were validated when written; the strict RFC check runs
  // again when each message is built, and a failure there fails that message with its reason.
  const query = sql<{
    record_id: string;
    email: string | null;
    name: string | null;
    reason: ExclusionReason | null;
  }>`
    WITH src AS (
      SELECT r.id AS record_id, NULLIF(btrim(${path.email}), '') AS raw_email, ${path.optOut} AS opt_out, ${path.name} AS name
      FROM records r ${path.join}
      WHERE ${conditions}
    ), classified AS (
      SELECT record_id, lower(raw_email) AS email, name,
        CASE
          WHEN raw_email IS NULL THEN 'no_address'
          WHEN raw_email !~ '^[^@[:space:]<>(),;:"]+@[^@[:space:]<>(),;:"]+\\.[^@[:space:]<>(),;:"]+$' THEN 'invalid_address'
          WHEN opt_out THEN 'opted_out'
          WHEN EXISTS (SELECT 1 FROM suppressions sp WHERE sp.org_id = ${actor.orgId} AND sp.email = lower(raw_email))
            THEN 'suppressed'
        END AS reason
      FROM src
    )
    SELECT record_id, email, name,
      CASE
        WHEN reason IS NOT NULL THEN reason
        WHEN row_number() OVER (PARTITION BY reason IS NULL, email ORDER BY record_id) > 1 THEN 'duplicate'
      END AS reason
    FROM classified`;
  return { scope: s, query };
}

/** How many will receive it and how many are left out, by reason (shown before sending). */
export async function countAudience(deps: Deps, a: ResolvedAudience): Promise<AudienceCounts> {
  const rows = (
    await sql<{ reason: ExclusionReason | null; n: number }>`
      SELECT reason, count(*)::int AS n FROM (${a.query}) aud GROUP BY reason`.execute(deps.db)
  ).rows;
  const excluded = Object.fromEntries(EXCLUSION_REASONS.map((r) => [r, 0])) as Record<
    ExclusionReason,
    number
  >;
  let recipients = 0;
  for (const row of rows) {
    if (row.reason === null) recipients = row.n;
    else excluded[row.reason] = row.n;
  }
  return { recipients, excluded, excludedTotal: Object.values(excluded).reduce((x, y) => x + y, 0) };
}

/** One page of the records that receive it (reason null) or are left out for one reason. */
export async function listAudience(
  deps: Deps,
  a: ResolvedAudience,
  reason: ExclusionReason | null,
  page: { limit: number; after?: string },
) {
  const limit = Math.min(Math.max(Math.trunc(page.limit), 1), 500);
  const rows = (
    await sql<{ record_id: string; email: string | null; name: string | null }>`
      SELECT record_id, email, name FROM (${a.query}) aud
      WHERE ${reason === null ? sql`reason IS NULL` : sql`reason = ${reason}`}
        ${page.after ? sql`AND record_id > ${page.after}::uuid` : sql``}
      ORDER BY record_id LIMIT ${limit + 1}`.execute(deps.db)
  ).rows;
  const items = rows.slice(0, limit);
  return {
    items: items.map((r) => ({ recordId: r.record_id, email: r.email, name: r.name })),
    next: rows.length > limit ? items[items.length - 1].record_id : null,
  };
}
