import type { Deps } from '../../deps.ts';
import { ingestMail } from '../ingest.ts';
import { linkMails } from '../links.ts';
import { mailInputFromRaw } from '../parse.ts';
import type { MailInput } from '../types.ts';
import { orgOfToken } from './address.ts';
import { checkMailAuth, type MailAuthSummary, type Resolver } from './authentication.ts';
import { dropboxInbound } from './metrics.ts';
import { isVerifiedSender } from './senders.service.ts';

// An email received at one or more orgs' dropbox addresses (the inbound SMTP listener,
// src/tracking/bounces/inbound.ts, accepted the recipients). Authenticated (SPF, DKIM) once, parsed
// once, then per org: stored through ingestMail, linked to records only when From is a verified
// sender, and kept as a dropbox item, attached or unmatched with the reason.

export const KEEP_ATTACHMENTS_UP_TO = 5 * 1024 * 1024;

export interface DropboxSession {
  /** The SMTP client's address and HELO name, and MAIL FROM ('' for the null sender). */
  ip: string;
  helo: string;
  sender: string;
}

export interface DropboxReceived {
  orgId: string;
  itemId: string;
  mailId: string;
  state: 'attached' | 'unmatched';
}

export async function receiveDropbox(
  deps: Deps,
  raw: Buffer,
  orgIds: readonly string[],
  session: DropboxSession,
  opts: { resolver?: Resolver } = {},
): Promise<DropboxReceived[]> {
  const auth = await checkMailAuth(raw, {
    ...session,
    mta: deps.config.inboundDomain,
    resolver: opts.resolver,
  });
  const mail = await mailInputFromRaw(raw, { keepAttachmentsUpTo: KEEP_ATTACHMENTS_UP_TO });
  const out: DropboxReceived[] = [];
  for (const orgId of new Set(orgIds)) {
    // The email and its item together or not at all: a 451 leaves nothing half-stored behind.
    const r = await deps.db
      .transaction()
      .execute((trx) => storeForOrg({ ...deps, db: trx }, orgId, mail, session, auth));
    dropboxInbound.inc({ outcome: r.state });
    out.push(r);
  }
  return out;
}

async function storeForOrg(
  deps: Deps,
  orgId: string,
  mail: MailInput,
  session: DropboxSession,
  auth: MailAuthSummary,
): Promise<DropboxReceived> {
  const from = mail.from?.address.toLowerCase() ?? null;
  // A verified From is believed unless the sending host was refused by SPF and no DKIM signature
  // vouches for the message: a forged From of a verified sender then waits for an admin.
  const forged = auth.spf === 'fail' && auth.dkim !== 'pass';
  const link = from && !forged ? await isVerifiedSender(deps, orgId, from) : false;
  const stored = await ingestMail(deps, orgId, [{ mail, source: 'dropbox', location: null, link }]);
  const { id: mailId, created } = stored.mails[0];
  if (link) {
    // Stored before (another copy, unlinked): ingest links only what it creates.
    if (!created) await linkMails(deps, orgId, [mailId]);
    // The dropbox attaches to To and Cc recipients only: the sender is one of ours, so a record
    // sharing the sender's address (a user imported as a lead) is not what the email concerns.
    await deps.db
      .deleteFrom('mail_record_links')
      .where('org_id', '=', orgId)
      .where('mail_id', '=', mailId)
      .where('role', '=', 'from')
      .execute();
  }
  const attached = link && (await recipientLinks(deps, orgId, mailId)) > 0;
  const state = attached ? 'attached' : 'unmatched';
  const reason = attached ? null : link ? 'no_record' : 'unverified_sender';
  // The same email again (a retry after a 451, or BCC'd twice): one item, its state refreshed.
  const again = await deps.db
    .updateTable('dropbox_items')
    .set({ state, reason: reason ?? undefined })
    .where('org_id', '=', orgId)
    .where('mail_id', '=', mailId)
    .where('state', '=', 'unmatched')
    .returning('id')
    .executeTakeFirst();
  const existing =
    again ??
    (await deps.db
      .selectFrom('dropbox_items')
      .select('id')
      .where('org_id', '=', orgId)
      .where('mail_id', '=', mailId)
      .where('state', '=', 'attached')
      .executeTakeFirst());
  const item =
    existing ??
    (await deps.db
      .insertInto('dropbox_items')
      .values({
        org_id: orgId,
        mail_id: mailId,
        envelope_from: session.sender.slice(0, 320),
        from_address: from,
        from_name: mail.from?.name ?? null,
        subject: mail.subject.slice(0, 2000),
        date: mail.date,
        remote_ip: session.ip,
        helo: session.helo.slice(0, 255),
        spf: auth.spf,
        spf_detail: auth.spfDetail,
        dkim: auth.dkim,
        dkim_domain: auth.dkimDomain,
        dkim_detail: auth.dkimDetail,
        state,
        reason,
        received_at: deps.clock.now(),
      })
      .returning('id')
      .executeTakeFirstOrThrow());
  return { orgId, itemId: item.id, mailId, state };
}

/** The listener's entry: the dropbox tokens of the accepted recipients, the SMTP session's facts. */
export async function deliverToDropbox(
  deps: Deps,
  raw: Buffer,
  tokens: readonly string[],
  session: { remoteAddress: string; hostNameAppearsAs: string; mailFrom: string },
  opts: { resolver?: Resolver } = {},
): Promise<DropboxReceived[]> {
  const orgIds: string[] = [];
  for (const t of new Set(tokens)) {
    // Regenerated between RCPT and DATA: that recipient is gone, the others still get it.
    const orgId = await orgOfToken(deps, t);
    if (orgId) orgIds.push(orgId);
  }
  if (!orgIds.length) return [];
  return receiveDropbox(
    deps,
    raw,
    orgIds,
    {
      ip: session.remoteAddress.replace(/^::ffff:/i, ''),
      helo: session.hostNameAppearsAs || '',
      sender: session.mailFrom,
    },
    opts,
  );
}

/** Records the email is linked to as a To or Cc recipient (the dropbox attaches to nothing else). */
async function recipientLinks(deps: Deps, orgId: string, mailId: string): Promise<number> {
  const r = await deps.db
    .selectFrom('mail_record_links')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', orgId)
    .where('mail_id', '=', mailId)
    .where('role', 'in', ['to', 'cc'])
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
