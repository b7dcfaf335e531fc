import { sql } from 'kysely';
import { z } from 'zod';
import { type Actor, can, loadModules, type ModuleMeta, requireAdmin } from '../../crm/index.ts';
import { normaliseData } from '../../crm/values.ts';
import type { Deps } from '../../deps.ts';
import { AppError, invalid, notFound } from '../../errors.ts';

// Rules that add the sender of incoming mail as a Lead or Contact (F6.4): by sender domain, subject
// keyword or mailbox folder. Never for the org's own domains, never twice for one address.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

export const leadRuleInput = z
  .object({
    /** org: for every mailbox of the org (administrators only); else the user's own mailbox. */
    scope: z.enum(['user', 'org']).default('user'),
    module: z.enum(['leads', 'contacts']),
    match: z.enum(['domain', 'keyword', 'folder']),
    values: z.array(z.string().trim().min(1).max(200)).min(1).max(50),
    active: z.boolean().default(true),
  })
  .strict();
export type LeadRuleInput = z.input<typeof leadRuleInput>;

/** Domains lower-cased without a leading "@"; keywords and folders as typed. */
function cleanValues(match: string, values: string[]) {
  if (match !== 'domain') return [...new Set(values)];
  const out = values.map((v) => v.toLowerCase().replace(/^@/, ''));
  const bad = out.findIndex((d) => !DOMAIN.test(d));
  if (bad >= 0)
    throw invalid(`"${values[bad]}" is not a domain`, [{ path: `values.${bad}`, message: 'not a domain' }]);
  return [...new Set(out)];
}

const RULE_COLUMNS = [
  'id',
  'user_id as userId',
  'module',
  'match',
  'match_values as values',
  'active',
  'created_at as createdAt',
] as const;

/** The user's own rules and the org's rules. */
export async function listLeadRules(deps: Deps, actor: Actor) {
  const rows = await deps.db
    .selectFrom('mail_lead_rules')
    .select(RULE_COLUMNS)
    .where('org_id', '=', actor.orgId)
    .where((e) => e.or([e('user_id', '=', actor.userId), e('user_id', 'is', null)]))
    .orderBy('created_at')
    .execute();
  return rows.map((r) => ({ ...r, scope: r.userId ? ('user' as const) : ('org' as const) }));
}

export async function createLeadRule(deps: Deps, actor: Actor, input: LeadRuleInput) {
  const i = leadRuleInput.parse(input);
  if (i.scope === 'org') requireAdmin(actor);
  if (!can(actor, i.module, 'create'))
    throw new AppError('forbidden', `Your profile does not allow creating ${i.module}`);
  const now = deps.clock.now();
  const r = await deps.db
    .insertInto('mail_lead_rules')
    .values({
      org_id: actor.orgId,
      user_id: i.scope === 'org' ? null : actor.userId,
      module: i.module,
      match: i.match,
      match_values: cleanValues(i.match, i.values),
      active: i.active,
      created_by: actor.userId,
      created_at: now,
      updated_at: now,
    })
    .returning(RULE_COLUMNS)
    .executeTakeFirstOrThrow();
  return { ...r, scope: i.scope };
}

/** A rule the actor may change: their own, or (administrators) an org rule. */
async function ownRule(deps: Deps, actor: Actor, id: string) {
  if (!UUID.test(id)) throw notFound('Rule');
  const r = await deps.db
    .selectFrom('mail_lead_rules')
    .select(['id', 'user_id', 'match'])
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!r || (r.user_id !== null && r.user_id !== actor.userId)) throw notFound('Rule');
  if (r.user_id === null) requireAdmin(actor);
  return r;
}

export async function updateLeadRule(
  deps: Deps,
  actor: Actor,
  id: string,
  input: { values?: string[]; active?: boolean },
) {
  const r = await ownRule(deps, actor, id);
  const values =
    input.values === undefined
      ? undefined
      : cleanValues(r.match, z.array(z.string().trim().min(1).max(200)).min(1).max(50).parse(input.values));
  const out = await deps.db
    .updateTable('mail_lead_rules')
    .set({
      ...(values ? { match_values: values } : {}),
      ...(input.active !== undefined ? { active: input.active } : {}),
      updated_at: deps.clock.now(),
    })
    .where('id', '=', r.id)
    .returning(RULE_COLUMNS)
    .executeTakeFirstOrThrow();
  return { ...out, scope: out.userId ? ('user' as const) : ('org' as const) };
}

export async function deleteLeadRule(deps: Deps, actor: Actor, id: string) {
  const r = await ownRule(deps, actor, id);
  await deps.db.deleteFrom('mail_lead_rules').where('id', '=', r.id).execute();
}

const domainOf = (address: string) => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

/** The org's own domains: its users', its sending addresses' and its connected mailboxes'. */
async function ownDomains(deps: Deps, orgId: string): Promise<Set<string>> {
  const rows = await sql<{ email: string }>`
    SELECT email FROM users WHERE org_id = ${orgId}
    UNION SELECT email FROM org_addresses WHERE org_id = ${orgId}
    UNION SELECT email_address FROM mailbox_accounts WHERE org_id = ${orgId}`.execute(deps.db);
  return new Set(rows.rows.map((r) => domainOf(r.email)));
}

/** "Ann Lee" → Ann / Lee; no name → the address's local part as the last name. */
export function splitName(name: string | null, address: string): { first?: string; last: string } {
  const n = (name ?? '').replace(/["']/g, '').trim().replace(/\s+/g, ' ');
  if (!n || n.includes('@')) return { last: address.slice(0, address.lastIndexOf('@')) };
  // "Lee, Ann"
  const comma = n.indexOf(',');
  if (comma > 0) return { first: n.slice(comma + 1).trim() || undefined, last: n.slice(0, comma).trim() };
  const sp = n.lastIndexOf(' ');
  return sp < 0 ? { last: n } : { first: n.slice(0, sp), last: n.slice(sp + 1) };
}

interface Rule {
  id: string;
  user_id: string | null;
  module: 'leads' | 'contacts';
  match: 'domain' | 'keyword' | 'folder';
  match_values: string[];
}

function matches(rule: Rule, mail: { address: string; subject: string }, folder: string) {
  switch (rule.match) {
    case 'domain': {
      const d = domainOf(mail.address);
      return rule.match_values.some((v) => d === v || d.endsWith(`.${v}`));
    }
    case 'keyword': {
      const s = mail.subject.toLowerCase();
      return rule.match_values.some((k) => s.includes(k.toLowerCase()));
    }
    case 'folder':
      return rule.match_values.some((f) => f.toLowerCase() === folder.toLowerCase());
  }
}

/**
 * Runs the org's active rules over newly ingested mail: the sender of an incoming email that a rule
 * matches becomes a Lead or Contact owned by the mailbox's owner, and that sender's mail is linked
 * to it. Returns how many records it created.
 */
export async function applyLeadRules(deps: Deps, orgId: string, mailIds: string[]): Promise<number> {
  const ids = mailIds.filter((id) => UUID.test(id));
  if (!ids.length) return 0;
  const rules: Rule[] = await deps.db
    .selectFrom('mail_lead_rules')
    .select(['id', 'user_id', 'module', 'match', 'match_values'])
    .where('org_id', '=', orgId)
    .where('active', '=', true)
    .orderBy('created_at')
    .execute();
  if (!rules.length) return 0;
  // Incoming copies only: the mailbox owner is who the new record belongs to.
  const rows = await deps.db
    .selectFrom('mail_messages as m')
    .innerJoin('mail_locations as l', 'l.mail_id', 'm.id')
    .select(['m.id', 'm.from_address', 'm.from_name', 'm.subject', 'l.user_id', 'l.folder'])
    .where('m.org_id', '=', orgId)
    .where('m.id', 'in', ids)
    .where('l.direction', '=', 'in')
    .where('m.from_address', 'is not', null)
    .orderBy('m.date')
    .orderBy('l.id')
    .execute();
  if (!rows.length) return 0;
  const own = await ownDomains(deps, orgId);
  const modules = await loadModules(deps, orgId);
  const seen = new Set<string>();
  let created = 0;
  for (const row of rows) {
    const address = (row.from_address as string).toLowerCase();
    if (seen.has(address) || own.has(domainOf(address))) continue;
    const mail = { address, subject: row.subject };
    const rule = rules.find(
      (r) => (r.user_id === null || r.user_id === row.user_id) && matches(r, mail, row.folder),
    );
    if (!rule) continue;
    seen.add(address);
    const mod = modules.get(rule.module);
    if (!mod) continue;
    if (await addSender(deps, orgId, rule, mod, address, row.from_name, row.user_id)) created++;
  }
  return created;
}

async function addSender(
  deps: Deps,
  orgId: string,
  rule: Rule,
  mod: ModuleMeta,
  address: string,
  name: string | null,
  ownerId: string,
): Promise<boolean> {
  const { first, last } = splitName(name, address);
  const source = mod.fields.find((f) => f.apiName === 'lead_source' && f.options.values?.includes('Email'));
  const checked = normaliseData(
    mod.fields,
    { first_name: first, last_name: last, email: address, ...(source ? { lead_source: 'Email' } : {}) },
    { partial: false },
  );
  if (checked.errors.length) {
    // A required custom field: the rule cannot fill it in.
    deps.log.warn({ rule: rule.id, errors: checked.errors }, 'lead rule could not add a sender');
    return false;
  }
  // Inside ingest's transaction when it runs us (the new record commits with the mail), else our own.
  const inTransaction = <T>(fn: (trx: Deps['db']) => Promise<T>) =>
    deps.db.isTransaction ? fn(deps.db) : deps.db.transaction().execute(fn);
  return inTransaction(async (trx) => {
    // Claimed first: two ingests of the same sender at once add it once.
    const claim = await trx
      .insertInto('mail_lead_rule_adds')
      .values({ org_id: orgId, address, rule_id: rule.id, created_at: deps.clock.now() })
      .onConflict((c) => c.doNothing())
      .returning('address')
      .executeTakeFirst();
    if (!claim) return false;
    const existing = await sql<{
      id: string;
    }>`SELECT r.id FROM records AS r JOIN modules AS mo ON mo.id = r.module_id
        WHERE r.org_id = ${orgId} AND mo.api_name IN ('leads', 'contacts') AND r.data ? 'email'
          AND lower(r.data ->> 'email') = ${address} LIMIT 1`.execute(trx);
    if (existing.rows.length) {
      // Already a Lead or Contact: keep the claim (never add it later) and point it at that record.
      await trx
        .updateTable('mail_lead_rule_adds')
        .set({ rule_id: null, record_id: existing.rows[0].id })
        .where('org_id', '=', orgId)
        .where('address', '=', address)
        .execute();
      return false;
    }
    const now = deps.clock.now();
    const rec = await trx
      .insertInto('records')
      .values({
        org_id: orgId,
        module_id: mod.id,
        owner_id: ownerId,
        created_by: ownerId,
        data: JSON.stringify(checked.data),
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await trx
      .updateTable('mail_lead_rule_adds')
      .set({ record_id: rec.id })
      .where('org_id', '=', orgId)
      .where('address', '=', address)
      .execute();
    await sql`INSERT INTO mail_record_links (mail_id, record_id, org_id, module_id, role)
      SELECT m.id, ${rec.id}, m.org_id, ${mod.id},
        CASE WHEN lower(m.from_address) = ${address} THEN 'from'
             WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(m.to_addresses) AS e WHERE lower(e ->> 'address') = ${address}) THEN 'to'
             ELSE 'cc' END
      FROM mail_messages AS m WHERE m.org_id = ${orgId} AND m.participants @> ARRAY[${address}]::text[]
      ON CONFLICT DO NOTHING`.execute(trx);
    await trx
      .insertInto('record_history')
      .values({
        org_id: orgId,
        record_id: rec.id,
        at: now,
        source: 'mail_rule',
        mass_email_id: null,
        summary: `Added from an email by ${address}`,
        detail: JSON.stringify({ ruleId: rule.id }),
      })
      .execute();
    return true;
  });
}
