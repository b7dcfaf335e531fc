import { convert as htmlToText } from 'html-to-text';
import sanitizeHtml from 'sanitize-html';
import { type Actor, can, loadModule, requireModule } from '../crm/index.ts';
import type { AddressChoice } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { renderForRecord } from '../templates/index.ts';
import { withStatus } from '../tracking/record-status.ts';
import { assertHeaderSafe, parseAddress } from './address.ts';
import { deliveryExpiresAt, wakeDelivery } from './delivery.ts';
import { resolveChoice } from './from-options.ts';
import { consumeIndividual } from './limits.ts';
import { sendingSetup } from './queue-rows.ts';
import { newMessageIdHeader } from './verp.ts';

// Individual email (F3.1, F3.2): from a record's page, from a template or written from scratch, to
// the record's address. The message is rendered now (what the user previewed is what is sent),
// counted against the daily limit in the same transaction that queues it, and delivered by the
// delivery worker like every other message.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface IndividualEmailInput {
  module: string;
  recordId: string;
  templateId?: string | null;
  templateVersion?: number;
  /** From scratch (no template): subject and an HTML body from the rich-text editor. */
  subject?: string;
  html?: string;
  text?: string;
  from?: AddressChoice;
  replyTo?: AddressChoice | null;
}

// What the compose editor may produce; anything else (scripts, handlers, frames, forms) is dropped.
const COMPOSE_HTML: sanitizeHtml.IOptions = {
  allowedTags: [
    ...sanitizeHtml.defaults.allowedTags,
    'img',
    'span',
    'u',
    's',
    'del',
    'ins',
    'font',
    'center',
  ],
  allowedAttributes: {
    a: ['href', 'title', 'target', 'style'],
    img: ['src', 'alt', 'width', 'height', 'style'],
    '*': ['style', 'align'],
    td: ['colspan', 'rowspan', 'style', 'align', 'valign', 'width'],
    th: ['colspan', 'rowspan', 'style', 'align', 'valign', 'width'],
    table: ['width', 'cellpadding', 'cellspacing', 'border', 'style', 'align'],
    font: ['color', 'face', 'size'],
  },
  allowedSchemes: ['http', 'https', 'mailto', 'tel'],
  allowedSchemesByTag: { img: ['http', 'https', 'data'] },
};

/** Where a record's email goes: its own email field, or (Deals) its contact's. */
async function recipientOf(deps: Deps, actor: Actor, module: string, recordId: string) {
  requireModule(actor, module, 'read');
  const mod = await loadModule(deps, actor.orgId, module);
  const rec = UUID.test(recordId)
    ? await deps.db
        .selectFrom('records')
        .select(['id', 'owner_id', 'data', 'module_id'])
        .where('org_id', '=', actor.orgId)
        .where('module_id', '=', mod.id)
        .where('id', '=', recordId)
        .executeTakeFirst()
    : undefined;
  if (!rec) throw notFound('Record');
  const data = rec.data as Record<string, unknown>;
  const emailField =
    mod.fields.find((f) => f.apiName === 'email' && f.type === 'email') ??
    mod.fields.find((f) => f.type === 'email');
  let holder = data;
  if (!emailField) {
    const contactField = mod.fields.find(
      (f) => f.type === 'lookup' && (f.options as { module?: string }).module === 'contacts',
    );
    const contactId = contactField ? data[contactField.apiName] : undefined;
    const contact =
      typeof contactId === 'string' && UUID.test(contactId) && can(actor, 'contacts', 'read')
        ? await deps.db
            .selectFrom('records')
            .select('data')
            .where('org_id', '=', actor.orgId)
            .where('id', '=', contactId)
            .executeTakeFirst()
        : undefined;
    if (!contact) throw invalid(`This ${mod.singularLabel.toLowerCase()} has no email address to write to`);
    holder = contact.data as Record<string, unknown>;
  }
  const raw = holder[emailField?.apiName ?? 'email'];
  if (typeof raw !== 'string' || !raw.trim())
    throw invalid(`This ${mod.singularLabel.toLowerCase()} has no email address`);
  if (holder.email_opt_out === true)
    throw new AppError('validation_failed', 'This person opted out of email (Email Opt Out is set)', [
      { path: 'recordId', message: 'opted out' },
    ]);
  const to = parseAddress(raw, 'to');
  const supp = await deps.db
    .selectFrom('suppressions')
    .select('reason')
    .where('org_id', '=', actor.orgId)
    .where('email', '=', to.address.toLowerCase())
    .executeTakeFirst();
  if (supp)
    throw new AppError(
      'validation_failed',
      `${to.address} is on the suppression list (${supp.reason.replace('_', ' ')})`,
      [{ path: 'recordId', message: 'suppressed' }],
    );
  const name =
    [holder.first_name, holder.last_name].filter((x) => typeof x === 'string' && x).join(' ') || null;
  return { mod, rec, to: { address: to.address, name } };
}

/** The merged email as it will be sent: shown before sending, and exactly what send() queues. */
export async function previewIndividualEmail(deps: Deps, actor: Actor, input: IndividualEmailInput) {
  const { mod, rec, to } = await recipientOf(deps, actor, input.module, input.recordId);
  let content: { subject: string; html: string | null; text: string };
  let template: { id: string; version: number } | null = null;
  let templateAddresses: {
    from_address: string | null;
    from_name: string | null;
    reply_to: string | null;
  } | null = null;
  if (input.templateId) {
    const r = await renderForRecord(deps, actor, {
      templateId: input.templateId,
      version: input.templateVersion,
      recordId: rec.id,
    });
    content = { subject: r.subject, html: r.html ?? null, text: r.text };
    template = { id: r.templateId, version: r.templateVersion };
    templateAddresses = {
      from_address: r.from?.address ?? null,
      from_name: r.from?.name ?? null,
      reply_to: r.replyTo ?? null,
    };
  } else {
    const subject = (input.subject ?? '').trim();
    if (!subject) throw invalid('Write a subject', [{ path: 'subject', message: 'required' }]);
    if (subject.length > 998)
      throw invalid('The subject is too long', [{ path: 'subject', message: 'too long' }]);
    assertHeaderSafe('subject', subject);
    const html = input.html?.trim() ? sanitizeHtml(input.html, COMPOSE_HTML) : null;
    const text = input.text?.trim() ? input.text : html ? htmlToText(html, { wordwrap: 78 }) : '';
    if (!html && !text.trim()) throw invalid('Write a message', [{ path: 'html', message: 'required' }]);
    content = { subject, html, text };
  }
  const ctx = {
    orgId: actor.orgId,
    userId: actor.userId,
    ownerId: rec.owner_id,
    template: templateAddresses,
  };
  const from = await resolveChoice(deps, ctx, input.from, 'from');
  const replyTo = input.replyTo ? await resolveChoice(deps, ctx, input.replyTo, 'replyTo') : null;
  return { module: mod, record: rec, to, from, replyTo, template, ...content };
}

export async function sendIndividualEmail(deps: Deps, actor: Actor, input: IndividualEmailInput) {
  const p = await previewIndividualEmail(deps, actor, input);
  const setup = await sendingSetup(deps, actor.orgId);
  const domain = setup.domain ?? p.from.address.split('@')[1];
  const id = await deps.db.transaction().execute(async (trx) => {
    await consumeIndividual(deps, actor.orgId, trx);
    const row = await trx
      .insertInto('messages')
      .values({
        org_id: actor.orgId,
        kind: 'individual',
        module_id: p.module.id,
        record_id: p.record.id,
        template_id: p.template?.id ?? null,
        template_version: p.template?.version ?? null,
        sender_id: actor.userId,
        from_address: p.from.address,
        from_name: p.from.name,
        reply_to: p.replyTo?.address ?? null,
        to_address: p.to.address,
        to_name: p.to.name,
        subject: p.subject,
        html: p.html,
        text: p.text,
        message_id_header: newMessageIdHeader(domain),
        transport: setup.transport,
        expires_at: deliveryExpiresAt(deps),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await wakeDelivery(deps, trx, actor.orgId);
    return row.id;
  });
  return getMessage(deps, actor, id);
}

const MESSAGE_COLUMNS = [
  'id',
  'kind',
  'module_id',
  'record_id',
  'template_id',
  'template_version',
  'sender_id',
  'from_address',
  'from_name',
  'reply_to',
  'to_address',
  'to_name',
  'subject',
  'status',
  'attempts',
  'smtp_code',
  'smtp_response',
  'sent_at',
  'created_at',
  'mass_email_id',
  'bounced_at',
  'bounce_kind',
  'bounce_reason',
  'opened_at',
  'last_opened_at',
  'open_count',
  'clicked_at',
  'last_clicked_at',
  'click_count',
  'replied_at',
  // The rest of what the email status needs (src/tracking/status.ts).
  'transport',
  'tracked',
  'machine_open_count',
  'machine_click_count',
] as const;

/** The record's Emails list (F3.1): every message to it, newest first, with its status (F4.5). */
export async function listRecordEmails(deps: Deps, actor: Actor, module: string, recordId: string) {
  requireModule(actor, module, 'read');
  const mod = await loadModule(deps, actor.orgId, module);
  if (!UUID.test(recordId)) throw notFound('Record');
  // Another org's (or module's) record id is not found, as on every other record route.
  const rec = await deps.db
    .selectFrom('records')
    .select('id')
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', mod.id)
    .where('id', '=', recordId)
    .executeTakeFirst();
  if (!rec) throw notFound('Record');
  const rows = await deps.db
    .selectFrom('messages')
    .select(MESSAGE_COLUMNS)
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', mod.id)
    .where('record_id', '=', recordId)
    .orderBy('created_at', 'desc')
    .limit(500)
    .execute();
  return withStatus(rows);
}

/** One message with its bodies: for its sender, admins, and those who can read its record's module. */
export async function getMessage(deps: Deps, actor: Actor, id: string) {
  const m = UUID.test(id)
    ? await deps.db
        .selectFrom('messages as m')
        .leftJoin('modules as mo', 'mo.id', 'm.module_id')
        .select(MESSAGE_COLUMNS.map((c) => `m.${c}` as const))
        .select(['m.html', 'm.text', 'mo.api_name as module'])
        .where('m.org_id', '=', actor.orgId)
        .where('m.id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!m) throw notFound('Message');
  const allowed =
    actor.isAdmin || m.sender_id === actor.userId || (m.module !== null && can(actor, m.module, 'read'));
  if (!allowed) throw notFound('Message');
  return m;
}
