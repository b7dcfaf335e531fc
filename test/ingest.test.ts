import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorForUser, createRecord } from '../src/crm/index.ts';
import { ingestMail, snippetOf } from '../src/mailbox/ingest.ts';
import { linkMails } from '../src/mailbox/links.ts';
import { mailInputFromRaw } from '../src/mailbox/parse.ts';
import { normalizeSubject, SUBJECT_PREFIX } from '../src/mailbox/threading.ts';
import type { MailInput, MailLocationInput } from '../src/mailbox/types.ts';
import { suppress } from '../src/tracking/bounces/suppression.ts';
import { createTestOrg, type TestOrg, testDeps } from './support/app.ts';
import { itemOf, mailOf, rawMail } from './support/mail-fixtures.ts';

const deps = testDeps();
let org: TestOrg;
let other: TestOrg;
let leadId: string;
let contactId: string;
let accountA: string;
let accountB: string;
let userB: string;
const tag = randomBytes(4).toString('hex');
const lead = `lena.${tag}@client.example`;
const contact = `carl.${tag}@client.example`;
const me = `me.${tag}@ourco.example`;
const colleague = `bob.${tag}@ourco.example`;

async function account(o: TestOrg, userId: string, email: string): Promise<string> {
  const r = await deps.db
    .insertInto('mailbox_accounts')
    .values({
      org_id: o.orgId,
      user_id: userId,
      protocol: 'imap',
      host: 'imap.test',
      port: 993,
      security: 'tls',
      username: email,
      secret_enc: 'x',
      email_address: email,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return r.id;
}

let uid = 0;
const loc = (
  accountId: string,
  userId: string,
  folder = 'INBOX',
  direction: 'in' | 'out' = 'in',
): MailLocationInput => ({
  accountId,
  userId,
  folder,
  uid: ++uid,
  uidl: null,
  direction,
  seen: false,
});

async function parleyMessage(o: TestOrg, to: string, recordId: string | null, subject = 'Our offer') {
  const msgId = `<p.${randomBytes(6).toString('hex')}@ourco.example>`;
  const r = await deps.db
    .insertInto('messages')
    .values({
      org_id: o.orgId,
      kind: 'individual',
      record_id: recordId,
      sender_id: o.adminId,
      from_address: me,
      to_address: to,
      subject,
      message_id_header: msgId,
      transport: 'outbox',
      status: 'sent',
      sent_at: new Date(Date.now() - 3_600_000),
      expires_at: new Date(Date.now() + 86_400_000),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: r.id, msgId };
}

beforeAll(async () => {
  org = await createTestOrg(deps);
  other = await createTestOrg(deps);
  const actor = await actorForUser(deps, { userId: org.adminId });
  if (!actor) throw new Error('no actor');
  leadId = (
    await createRecord(deps, actor, 'leads', { data: { last_name: 'Lead', company: 'C', email: lead } })
  ).id;
  contactId = (
    await createRecord(deps, actor, 'contacts', {
      data: { last_name: 'Contact', email: contact.toUpperCase() },
    })
  ).id;
  userB = (
    await deps.db
      .insertInto('users')
      .values({ org_id: org.orgId, profile_id: org.standardProfileId, email: colleague, name: 'Bob' })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  accountA = await account(org, org.adminId, me);
  accountB = await account(org, userB, colleague);
});
afterAll(() => deps.close());

const mailRow = (id: string) =>
  deps.db.selectFrom('mail_messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

describe('parse', () => {
  it('reads headers, addresses, attachments as metadata, and hashes the raw bytes', async () => {
    const raw = await rawMail({
      from: `"Lena L" <${lead}>`,
      to: [me, 'Group: a@x.example, b@x.example;'],
      cc: colleague,
      subject: 'Re: Offer',
      messageId: '<m1@client.example>',
      inReplyTo: '<p1@ourco.example>',
      references: ['<p0@ourco.example>', '<p1@ourco.example>'],
      date: new Date('2026-01-02T03:04:05Z'),
      text: 'Hello',
      attachments: [
        { filename: 'a.txt', content: 'aaaa' },
        { filename: 'big.bin', content: Buffer.alloc(5000, 1) },
      ],
    });
    const m = await mailInputFromRaw(raw, { keepAttachmentsUpTo: 100 });
    expect(m).toMatchObject({
      messageId: '<m1@client.example>',
      inReplyTo: '<p1@ourco.example>',
      references: ['<p0@ourco.example>', '<p1@ourco.example>'],
      subject: 'Re: Offer',
      from: { address: lead, name: 'Lena L' },
      cc: [{ address: colleague }],
      date: new Date('2026-01-02T03:04:05Z'),
      size: raw.length,
    });
    expect(m.to.map((a) => a.address)).toEqual([me, 'a@x.example', 'b@x.example']);
    expect(m.text?.trim()).toBe('Hello');
    expect(m.attachments.map((a) => [a.filename, a.size, a.content?.toString()])).toEqual([
      ['a.txt', 4, 'aaaa'],
      ['big.bin', 5000, undefined],
    ]);
    expect(m.contentHash).toMatch(/^[0-9a-f]{64}$/);
    const none = await mailInputFromRaw(raw);
    expect(none.attachments.every((a) => a.content === null)).toBe(true);
  });

  it('uses the arrival time when the Date header is missing or broken', async () => {
    const raw = Buffer.from(`From: ${lead}\r\nTo: ${me}\r\nDate: not a date\r\nSubject: x\r\n\r\nbody\r\n`);
    const before = Date.now();
    const m = await mailInputFromRaw(raw);
    expect(m.date.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(m.messageId).toBeNull();
  });
});

describe('snippet', () => {
  it('is the start of the visible text, from the text part or else the HTML', () => {
    expect(snippetOf({ text: '  Hi\n\n there ', html: '<p>ignored</p>' })).toBe('Hi there');
    expect(
      snippetOf({
        text: null,
        html: '<html><head><title>T</title><style>p{}</style></head><body><!-- c --><p>Caf&eacute; &amp; tea&nbsp;&#8212;&#x21;</p><script>x</script></body></html>',
      }),
    ).toBe('Caf&eacute; & tea —!');
    const long = snippetOf({ text: 'word '.repeat(100), html: null });
    expect(long.length).toBe(200);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('subject normalisation in PostgreSQL', () => {
  it('matches the JavaScript one (ingest finds same-subject candidates in SQL)', async () => {
    const subjects = [
      'Re: Pricing',
      'RE[2]: AW: Fwd:  Pricing ',
      'Re: [EXT] Pricing',
      'Results: Q3',
      'Rif:Antw: x\ty',
      'Re:',
    ];
    const r = await sql<{ s: string }>`
      SELECT lower(trim(regexp_replace(regexp_replace(s, ${SUBJECT_PREFIX}, '', 'i'), '[[:space:]]+', ' ', 'g'))) AS s
      FROM unnest(${subjects}::text[]) WITH ORDINALITY AS x(s, n) ORDER BY n`.execute(deps.db);
    expect(r.rows.map((x) => x.s)).toEqual(subjects.map(normalizeSubject));
  });
});

describe('ingestMail', () => {
  it('stores an email once across two mailboxes and folders, with each copy located', async () => {
    const mail = await mailOf({
      from: lead,
      to: [me, colleague],
      subject: 'Shared one',
      messageId: `<shared.${tag}@client.example>`,
      html: '<p>Hello <b>there</b></p><script>x()</script>',
      attachments: [{ filename: 'q.pdf', content: 'pdf', contentType: 'application/pdf' }],
    });
    const a = await ingestMail(deps, org.orgId, [itemOf(mail, loc(accountA, org.adminId))]);
    const b = await ingestMail(deps, org.orgId, [
      itemOf(mail, loc(accountB, userB)),
      itemOf(mail, loc(accountB, userB, 'Archive')),
    ]);
    expect(a.mails[0].created).toBe(true);
    expect(b.mails.map((m) => m.created)).toEqual([false, false]);
    expect(b.mails.map((m) => m.id)).toEqual([a.mails[0].id, a.mails[0].id]);
    const row = await mailRow(a.mails[0].id);
    expect(row).toMatchObject({ has_attachments: true, snippet: 'Hello there', from_address: lead });
    expect(row.participants.sort()).toEqual([colleague, lead, me].sort());
    const locs = await deps.db
      .selectFrom('mail_locations')
      .selectAll()
      .where('mail_id', '=', row.id)
      .execute();
    expect(locs.map((l) => [l.user_id, l.folder]).sort()).toEqual(
      [
        [org.adminId, 'INBOX'],
        [userB, 'Archive'],
        [userB, 'INBOX'],
      ].sort(),
    );
    const att = await deps.db
      .selectFrom('mail_attachments')
      .selectAll()
      .where('mail_id', '=', row.id)
      .execute();
    expect(att).toMatchObject([
      { filename: 'q.pdf', content_type: 'application/pdf', size: 3, content: null },
    ]);
    // A copy seen again updates its flag, not a second row.
    const again = {
      ...loc(accountA, org.adminId),
      uid: locs.find((l) => l.user_id === org.adminId)?.uid ?? 0,
      seen: true,
    };
    await ingestMail(deps, org.orgId, [itemOf(mail, again)]);
    const seen = await deps.db
      .selectFrom('mail_locations')
      .selectAll()
      .where('mail_id', '=', row.id)
      .execute();
    expect(seen).toHaveLength(3);
    expect(seen.find((l) => l.user_id === org.adminId)?.seen).toBe(true);
  });

  it('keys mail without Message-ID by its content, twice in one batch included', async () => {
    const mail = await mailOf({ from: lead, to: me, subject: 'No id', messageId: null, text: 'plain' });
    expect(mail.messageId).toBeNull();
    const r = await ingestMail(deps, org.orgId, [
      itemOf(mail, loc(accountA, org.adminId)),
      itemOf(mail, loc(accountB, userB)),
    ]);
    expect(r.mails[0].id).toBe(r.mails[1].id);
    expect(r.mails.map((m) => m.created)).toEqual([true, false]);
    const row = await mailRow(r.mails[0].id);
    expect(row.message_key).toBe(`sha256:${mail.contentHash}`);
    expect(row.message_id_header).toBeNull();
  });

  it('threads by references, within a batch and across batches, then by subject', async () => {
    const t0 = Date.now() - 5 * 86_400_000;
    const root = `<root.${tag}@client.example>`;
    const reply = await mailOf({
      from: me,
      to: lead,
      subject: 'RE: AW: Pricing',
      messageId: `<r1.${tag}@ourco.example>`,
      inReplyTo: root,
      references: [root],
      date: new Date(t0 + 3_600_000),
    });
    const parent = await mailOf({
      from: lead,
      to: me,
      subject: 'Pricing',
      messageId: root,
      date: new Date(t0),
    });
    // The reply first, in the same batch: still one thread.
    const r = await ingestMail(deps, org.orgId, [
      itemOf(reply, loc(accountA, org.adminId, 'Sent', 'out')),
      itemOf(parent, loc(accountA, org.adminId)),
    ]);
    const [a, b] = await Promise.all(r.mails.map((m) => mailRow(m.id)));
    expect(a.thread_id).toBe(b.thread_id);
    // A later reply naming only the middle one.
    const later = await mailOf({
      from: lead,
      to: me,
      subject: 'Re: Re: Pricing',
      messageId: `<r2.${tag}@client.example>`,
      inReplyTo: `<r1.${tag}@ourco.example>`,
      date: new Date(t0 + 7_200_000),
    });
    // Same subject, shared participant, no headers: joins by subject. [EXT] is part of the subject.
    const bySubject = await mailOf({
      from: lead,
      to: me,
      subject: 'Fwd: pricing',
      date: new Date(t0 + 86_400_000),
    });
    const ext = await mailOf({
      from: lead,
      to: me,
      subject: 'Re: [EXT] Pricing',
      date: new Date(t0 + 86_400_000),
    });
    // Same subject, but nobody in common (other than us): a new thread.
    const stranger = await mailOf({
      from: `x.${tag}@else.example`,
      to: me,
      subject: 'Pricing',
      date: new Date(t0 + 86_400_000),
    });
    // Too late for the subject rule.
    const old = await mailOf({
      from: lead,
      to: me,
      subject: 'Pricing',
      date: new Date(t0 + 40 * 86_400_000),
    });
    const r2 = await ingestMail(
      deps,
      org.orgId,
      [later, bySubject, ext, stranger, old].map((m) => itemOf(m, loc(accountA, org.adminId))),
    );
    const rows = await Promise.all(r2.mails.map((m) => mailRow(m.id)));
    expect(rows.map((x) => x.thread_id === a.thread_id)).toEqual([true, true, false, false, false]);
  });

  it('joins a reply to a Parley-sent message in its conversation, marks it replied once, and records received', async () => {
    const sent = await parleyMessage(org, lead, leadId);
    const mail = await mailOf({
      from: `Lena <${lead.toUpperCase()}>`,
      to: me,
      cc: contact,
      subject: 'Re: Our offer',
      messageId: `<reply.${tag}@client.example>`,
      inReplyTo: sent.msgId,
      references: [sent.msgId],
      date: new Date(),
    });
    const r = await ingestMail(deps, org.orgId, [itemOf(mail, loc(accountA, org.adminId))]);
    const row = await mailRow(r.mails[0].id);
    expect(row.thread_id).toBe(sent.id);
    const msg = await deps.db
      .selectFrom('messages')
      .selectAll()
      .where('id', '=', sent.id)
      .executeTakeFirstOrThrow();
    expect(msg.replied_at).not.toBeNull();
    const links = await deps.db
      .selectFrom('mail_record_links')
      .select(['record_id', 'role'])
      .where('mail_id', '=', row.id)
      .orderBy('role', 'desc')
      .execute();
    expect(links).toEqual([
      { record_id: leadId, role: 'from' },
      { record_id: contactId, role: 'cc' },
    ]);
    // The same reply seen in another mailbox, and a second reply: still one 'replied' event.
    const second = await mailOf({
      from: lead,
      to: me,
      subject: 'Re: Our offer',
      messageId: `<reply2.${tag}@client.example>`,
      inReplyTo: sent.msgId,
    });
    await ingestMail(deps, org.orgId, [
      itemOf(mail, loc(accountB, userB)),
      itemOf(second, loc(accountA, org.adminId)),
    ]);
    const events = await deps.db
      .selectFrom('email_events')
      .select(['kind', 'record_id', 'message_id', 'data'])
      .where('org_id', '=', org.orgId)
      .where('kind', 'in', ['replied', 'received'])
      .where((eb) => eb.or([eb('message_id', '=', sent.id), eb('record_id', '=', leadId)]))
      .execute();
    expect(events.filter((e) => e.kind === 'replied')).toEqual([
      { kind: 'replied', record_id: leadId, message_id: sent.id, data: {} },
    ]);
    // One received per mail from the lead (two mails), none for the contact in cc.
    const r2 = await ingestMail(deps, org.orgId, [itemOf(second, null)]);
    const received = events
      .filter((e) => e.kind === 'received')
      .map((e) => (e.data as unknown as { mailId: string }).mailId)
      .filter((id) => id === row.id || id === r2.mails[0].id);
    expect(received.sort()).toEqual([row.id, r2.mails[0].id].sort());
    const contactReceived = await deps.db
      .selectFrom('email_events')
      .select('id')
      .where('record_id', '=', contactId)
      .where('kind', '=', 'received')
      .execute();
    expect(contactReceived).toHaveLength(0);
  });

  it('does not count our own mail to the record as a reply', async () => {
    const sent = await parleyMessage(org, contact, contactId, 'Follow-up');
    const ours = await mailOf({
      from: me,
      to: contact,
      subject: 'Re: Follow-up',
      messageId: `<own.${tag}@ourco.example>`,
      inReplyTo: sent.msgId,
    });
    const r = await ingestMail(deps, org.orgId, [itemOf(ours, loc(accountA, org.adminId, 'Sent', 'out'))]);
    expect((await mailRow(r.mails[0].id)).thread_id).toBe(sent.id);
    const msg = await deps.db
      .selectFrom('messages')
      .selectAll()
      .where('id', '=', sent.id)
      .executeTakeFirstOrThrow();
    expect(msg.replied_at).toBeNull();
  });

  it('stores an out-of-office answer in the conversation without counting it replied or received', async () => {
    const sent = await parleyMessage(org, contact, contactId, 'Proposal');
    const ooo = await mailOf({
      from: contact,
      to: me,
      subject: 'Automatic reply: Proposal',
      messageId: `<ooo.${tag}@client.example>`,
      inReplyTo: sent.msgId,
      references: [sent.msgId],
      headers: { 'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All' },
    });
    expect(ooo.autoReply).toBe(true);
    const r = await ingestMail(deps, org.orgId, [itemOf(ooo, loc(accountA, org.adminId))]);
    expect((await mailRow(r.mails[0].id)).thread_id).toBe(sent.id);
    const msg = await deps.db
      .selectFrom('messages')
      .select('replied_at')
      .where('id', '=', sent.id)
      .executeTakeFirstOrThrow();
    expect(msg.replied_at).toBeNull();
    const events = await deps.db
      .selectFrom('email_events')
      .select('kind')
      .where('org_id', '=', org.orgId)
      .where((eb) =>
        eb.or([eb('message_id', '=', sent.id), sql<boolean>`data ->> 'mailId' = ${r.mails[0].id}`]),
      )
      .execute();
    expect(events).toEqual([]);
    // The person's own answer afterwards counts.
    const human = await mailOf({
      from: contact,
      to: me,
      subject: 'Re: Proposal',
      inReplyTo: sent.msgId,
      messageId: `<human.${tag}@client.example>`,
    });
    expect(human.autoReply).toBe(false);
    await ingestMail(deps, org.orgId, [itemOf(human, loc(accountA, org.adminId))]);
    const after = await deps.db
      .selectFrom('messages')
      .select('replied_at')
      .where('id', '=', sent.id)
      .executeTakeFirstOrThrow();
    expect(after.replied_at).not.toBeNull();
  });

  it('lifts a soft-bounce suppression when the address writes in, but not an unsubscribe', async () => {
    const bouncy = `bouncy.${tag}@client.example`;
    const gone = `gone.${tag}@client.example`;
    await suppress(deps.db, { orgId: org.orgId, email: bouncy, reason: 'soft_bounce' });
    await suppress(deps.db, { orgId: org.orgId, email: gone, reason: 'unsubscribe' });
    await ingestMail(deps, org.orgId, [
      itemOf(await mailOf({ from: bouncy, to: me, subject: 'I am back' }), loc(accountA, org.adminId)),
      itemOf(await mailOf({ from: gone, to: me, subject: 'Hello' }), loc(accountA, org.adminId)),
    ]);
    const left = await deps.db
      .selectFrom('suppressions')
      .select('email')
      .where('org_id', '=', org.orgId)
      .where('email', 'in', [bouncy, gone])
      .execute();
    expect(left.map((s) => s.email)).toEqual([gone]);
  });

  it('stores link:false mail unlinked; linkMails links it later', async () => {
    const mail = await mailOf({
      from: colleague,
      to: lead,
      subject: 'Dropbox',
      messageId: `<db.${tag}@ourco.example>`,
    });
    const r = await ingestMail(deps, org.orgId, [itemOf(mail, null, { link: false })]);
    const count = async () =>
      (
        await deps.db
          .selectFrom('mail_record_links')
          .select('record_id')
          .where('mail_id', '=', r.mails[0].id)
          .execute()
      ).length;
    expect(await count()).toBe(0);
    expect((await mailRow(r.mails[0].id)).source).toBe('dropbox');
    const added = await linkMails(deps, org.orgId, [r.mails[0].id]);
    expect(added).toEqual([
      { mailId: r.mails[0].id, recordId: leadId, moduleId: expect.any(String), role: 'to' },
    ]);
    expect(await linkMails(deps, org.orgId, [r.mails[0].id])).toEqual([]);
    expect(await count()).toBe(1);
    // Another org cannot link it.
    expect(await linkMails(deps, other.orgId, [r.mails[0].id])).toEqual([]);
  });

  it('keeps orgs apart: the same email is stored per org, linked only to that org’s records', async () => {
    const otherAccount = await account(other, other.adminId, `o.${tag}@other.example`);
    const mail = await mailOf({
      from: lead,
      to: me,
      subject: 'Both',
      messageId: `<both.${tag}@client.example>`,
    });
    const a = await ingestMail(deps, org.orgId, [itemOf(mail, loc(accountA, org.adminId))]);
    const b = await ingestMail(deps, other.orgId, [itemOf(mail, loc(otherAccount, other.adminId))]);
    expect(b.mails[0].created).toBe(true);
    expect(b.mails[0].id).not.toBe(a.mails[0].id);
    const links = await deps.db
      .selectFrom('mail_record_links')
      .selectAll()
      .where('mail_id', '=', b.mails[0].id)
      .execute();
    expect(links).toEqual([]);
    // A location naming another org's account is not stored.
    const c = await ingestMail(deps, other.orgId, [
      itemOf(await mailOf({ from: lead, to: me, subject: 'Sneaky' }), loc(accountA, org.adminId)),
    ]);
    const locs = await deps.db
      .selectFrom('mail_locations')
      .select('id')
      .where('mail_id', '=', c.mails[0].id)
      .execute();
    expect(locs).toEqual([]);
  });

  it('survives two workers storing overlapping batches at once (in opposite orders)', async () => {
    const mails = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        mailOf({ from: lead, to: me, subject: `Race ${i}`, messageId: `<race${i}.${tag}@client.example>` }),
      ),
    );
    const items = (acc: string, user: string) => mails.map((m) => itemOf(m, loc(acc, user)));
    const [a, b] = await Promise.all([
      ingestMail(deps, org.orgId, items(accountA, org.adminId)),
      ingestMail(deps, org.orgId, items(accountB, userB).reverse()),
    ]);
    expect([...b.mails].reverse().map((m) => m.id)).toEqual(a.mails.map((m) => m.id));
    // Each email created by exactly one of the two.
    const made = a.mails.map((m, i) => Number(m.created) + Number(b.mails[mails.length - 1 - i].created));
    expect(made.every((n) => n === 1)).toBe(true);
  });

  it('ingests 2,000 emails in batches quickly', async () => {
    const N = 2000;
    const t0 = Date.now() - N * 60_000;
    const mails: MailInput[] = Array.from({ length: N }, (_, i) => {
      const them = { address: `p${i % 200}.${tag}@bulk.example`, name: `P ${i % 200}` };
      const out = i % 3 === 0;
      return {
        messageId: `<bulk${i}.${tag}@bulk.example>`,
        inReplyTo: i > 10 && i % 4 === 0 ? `<bulk${i - 7}.${tag}@bulk.example>` : null,
        references: i > 10 && i % 4 === 0 ? [`<bulk${i - 7}.${tag}@bulk.example>`] : [],
        subject: `${i % 2 ? 'Re: ' : ''}Topic ${i % 300}`,
        from: out ? { address: me, name: 'Me' } : them,
        to: [out ? them : { address: me, name: 'Me' }],
        cc: i % 10 === 0 ? [{ address: lead, name: null }] : [],
        date: new Date(t0 + i * 60_000),
        text: null,
        html: `<div><p>Message number ${i}</p><p>${'lorem ipsum '.repeat(40)}</p></div>`,
        attachments:
          i % 20 === 0
            ? [
                {
                  filename: 'a.pdf',
                  contentType: 'application/pdf',
                  size: 1000,
                  contentId: null,
                  part: '2',
                  content: null,
                },
              ]
            : [],
        size: 2000,
        contentHash: createHash('sha256')
          .update(String(i) + tag)
          .digest('hex'),
      };
    });
    const start = performance.now();
    for (let i = 0; i < mails.length; i += 250)
      await ingestMail(
        deps,
        org.orgId,
        mails
          .slice(i, i + 250)
          .map((m) => itemOf(m, loc(accountA, org.adminId, m.from?.address === me ? 'Sent' : 'INBOX'))),
      );
    const secs = (performance.now() - start) / 1000;
    const rate = Math.round(N / secs);
    console.log(`ingest: ${rate} msgs/s (${N} emails, batches of 250)`);
    const n = await sql<{ n: number; threads: number }>`
      SELECT count(*)::int AS n, count(DISTINCT thread_id)::int AS threads FROM mail_messages
      WHERE org_id = ${org.orgId} AND message_key LIKE ${`<bulk%.${tag}@bulk.example>`}`.execute(deps.db);
    expect(n.rows[0].n).toBe(N);
    expect(n.rows[0].threads).toBeLessThan(N / 2);
    expect(rate).toBeGreaterThan(300);
  }, 120_000);
});
