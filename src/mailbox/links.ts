// Which Leads and Contacts an email concerns: every one whose email address (the 'email' field or
// any other email-type field of those modules) is among the email's participants.
import { sql } from 'kysely';
import type { Deps } from '../deps.ts';

export const LINKED_MODULES = ['leads', 'contacts'] as const;

export interface NewLink {
  mailId: string;
  recordId: string;
  moduleId: string;
  role: 'from' | 'to' | 'cc';
}

/**
 * Links the given mails (of orgId) to the Leads and Contacts they concern; idempotent, so the
 * dropbox's "assign" and a newly created record can run it again. A record taking part twice keeps
 * its strongest role (from, then to, then cc). Returns the links it added.
 */
export async function linkMails(
  deps: Pick<Deps, 'db'>,
  orgId: string,
  mailIds: readonly string[],
): Promise<NewLink[]> {
  if (!mailIds.length) return [];
  // The other email-type fields of Leads and Contacts (custom ones); 'email' itself has an index.
  const extra = await sql<{ module_id: string; api_name: string }>`
    SELECT f.module_id, f.api_name FROM fields f JOIN modules m ON m.id = f.module_id AND m.org_id = f.org_id
    WHERE f.org_id = ${orgId} AND f.type = 'email' AND f.api_name <> 'email'
      AND m.api_name = ANY(${[...LINKED_MODULES]}::text[])`.execute(deps.db);
  const byOtherFields = extra.rows.length
    ? sql`UNION ALL
      SELECT p.mail_id, r.id, r.module_id, p.role, p.rank
      FROM p JOIN records r ON r.org_id = ${orgId}
        AND r.module_id = ANY(${extra.rows.map((f) => f.module_id)}::uuid[])
      JOIN unnest(${extra.rows.map((f) => f.module_id)}::uuid[], ${extra.rows.map((f) => f.api_name)}::text[])
        AS ef(module_id, api_name) ON ef.module_id = r.module_id
      WHERE lower(r.data ->> ef.api_name) = p.addr`
    : sql``;
  const rows = await sql<{ mail_id: string; record_id: string; module_id: string; role: NewLink['role'] }>`
    WITH mods AS (
      SELECT id FROM modules WHERE org_id = ${orgId} AND api_name = ANY(${[...LINKED_MODULES]}::text[])
    ), p AS (
      SELECT mm.id AS mail_id, a.addr, a.role, a.rank
      FROM mail_messages mm
      CROSS JOIN LATERAL (
        SELECT lower(mm.from_address), 'from', 1 WHERE mm.from_address IS NOT NULL
        UNION ALL SELECT lower(t ->> 'address'), 'to', 2 FROM jsonb_array_elements(mm.to_addresses) t
        UNION ALL SELECT lower(c ->> 'address'), 'cc', 3 FROM jsonb_array_elements(mm.cc_addresses) c
      ) AS a(addr, role, rank)
      WHERE mm.org_id = ${orgId} AND mm.id = ANY(${[...mailIds]}::uuid[]) AND a.addr IS NOT NULL
    ), hits AS (
      SELECT p.mail_id, r.id AS record_id, r.module_id, p.role, p.rank
      FROM p JOIN records r ON r.org_id = ${orgId} AND r.data ? 'email' AND lower(r.data ->> 'email') = p.addr
      WHERE r.module_id IN (SELECT id FROM mods)
      ${byOtherFields}
    )
    INSERT INTO mail_record_links (mail_id, record_id, org_id, module_id, role)
    SELECT DISTINCT ON (mail_id, record_id) mail_id, record_id, ${orgId}::uuid, module_id, role
    FROM hits ORDER BY mail_id, record_id, rank
    ON CONFLICT (mail_id, record_id) DO NOTHING
    RETURNING mail_id, record_id, module_id, role`.execute(deps.db);
  return rows.rows.map((r) => ({
    mailId: r.mail_id,
    recordId: r.record_id,
    moduleId: r.module_id,
    role: r.role,
  }));
}

/**
 * Links the stored mail of the given records' addresses to them: a Lead or Contact created (or
 * given a new address) after its mail was synced still shows its conversations. Records of other
 * modules cost nothing. One query over the participants index, then linkMails.
 */
export async function linkRecordsToMail(
  deps: Pick<Deps, 'db'>,
  orgId: string,
  module: string,
  recordIds: readonly string[],
): Promise<NewLink[]> {
  if (!recordIds.length || !(LINKED_MODULES as readonly string[]).includes(module)) return [];
  const mails = await sql<{ id: string }>`
    WITH addrs AS (
      SELECT DISTINCT lower(v.value) AS addr
      FROM records r
      JOIN modules m ON m.id = r.module_id AND m.org_id = r.org_id
        AND m.api_name = ANY(${[...LINKED_MODULES]}::text[])
      JOIN fields f ON f.module_id = m.id AND f.org_id = r.org_id AND f.type = 'email'
      CROSS JOIN LATERAL (SELECT r.data ->> f.api_name) AS v(value)
      WHERE r.org_id = ${orgId} AND r.id = ANY(${[...recordIds]}::uuid[]) AND v.value IS NOT NULL
    )
    SELECT mm.id FROM mail_messages mm
    WHERE mm.org_id = ${orgId}
      AND mm.participants && (SELECT coalesce(array_agg(addr), '{}') FROM addrs)`.execute(deps.db);
  return linkMails(
    deps,
    orgId,
    mails.rows.map((r) => r.id),
  );
}
