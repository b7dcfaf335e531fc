// A real bounce, end to end: Parley sends through a private Postfix relay, the remote MX refuses
// the recipient with 550 5.1.1, Postfix writes a DSN to the message's VERP return path and delivers
// it to Parley's bounce listener, which records the hard bounce and suppresses the address.
// Synchronised on the email_events NOTIFY, not on sleeps.

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Actor } from '../src/crm/index.ts';
import { deliverDue } from '../src/sending/delivery.ts';
import { saveRelay } from '../src/sending/relays.ts';
import { closeRelayTransports } from '../src/sending/transport.ts';
import { type BounceListener, startBounceListener } from '../src/tracking/bounces/inbound.ts';
import { EVENTS_CHANNEL } from '../src/tracking/events.ts';
import { createTestOrg, queueMessage, type TestOrg, testDeps } from './support/app.ts';
import {
  type CaptureServer,
  type PostfixRelay,
  type SmtpSink,
  smtpError,
  startCaptureServer,
  startPostfixRelay,
  startSmtpSink,
} from './support/mail-peers.ts';

const deps = testDeps();
let sink: SmtpSink;
let mx: CaptureServer;
let postfix: PostfixRelay;
let listener: BounceListener;
let org: TestOrg;
let listen: pg.Client;
const notified: string[] = [];
let wake: (() => void) | null = null;

beforeAll(async () => {
  listener = await startBounceListener(deps, { port: 0, host: '127.0.0.1' });
  sink = await startSmtpSink();
  mx = await startCaptureServer({
    onRcpt(address) {
      if (address.startsWith('nobody@'))
        throw smtpError(550, '5.1.1 <nobody@mx.parley.test>: Recipient address rejected: User unknown');
      if (address.startsWith('full@')) throw smtpError(552, '5.2.2 <full@mx.parley.test>: Mailbox full');
    },
  });
  // The remote MX for mx.parley.test, and our listener for the return-path domain.
  postfix = await startPostfixRelay(sink, { 'mx.parley.test': mx, 'bounces.parley.test': listener });
  org = await createTestOrg(deps);
  const actor: Actor = {
    orgId: org.orgId,
    userId: org.adminId,
    isAdmin: true,
    permissions: {},
    timeZone: 'UTC',
    locale: 'en',
  };
  await saveRelay(deps, actor, {
    host: '127.0.0.1',
    port: postfix.port,
    security: 'none',
    sendingDomain: 'bounces.parley.test',
  });
  listen = new pg.Client({ connectionString: inject('dbUrl') });
  await listen.connect();
  listen.on('notification', (n) => {
    if (n.payload === org.orgId) {
      notified.push(n.payload);
      wake?.();
    }
  });
  await listen.query(`LISTEN ${EVENTS_CHANNEL}`);
}, 60_000);

afterAll(async () => {
  closeRelayTransports(deps);
  await listen?.end();
  await postfix?.stop();
  await sink?.stop();
  await mx?.stop();
  await listener?.close();
  await deps.close();
});

/** Resolves at the next email event of the org (or fails after the timeout, with Postfix's log). */
function nextEvent(timeoutMs = 30_000): Promise<void> {
  const seen = notified.length;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no email event in ${timeoutMs} ms\n${postfix.log()}`)),
      timeoutMs,
    );
    wake = () => {
      if (notified.length > seen) {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
    };
  });
}

let n = 0;
function queue(to: string): Promise<string> {
  const i = ++n;
  return queueMessage(deps, org, {
    from_name: null,
    to_address: to,
    subject: `Bounce me ${i}`,
    text: `Hello ${i}`,
    message_id_header: `<bp${i}.${Date.now()}@bounces.parley.test>`,
    transport: 'relay',
  });
}

const message = (id: string) =>
  deps.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const suppression = (email: string) =>
  deps.db
    .selectFrom('suppressions')
    .selectAll()
    .where('org_id', '=', org.orgId)
    .where('email', '=', email)
    .executeTakeFirst();

describe('Postfix bounces to the listener', () => {
  it('a remote 550 5.1.1 comes back as a DSN, is recorded hard and suppresses the address', async () => {
    const id = await queue('nobody@mx.parley.test');
    const event = nextEvent();
    expect((await deliverDue(deps, { orgId: org.orgId })).sent).toBe(1);
    expect((await message(id)).status).toBe('sent'); // Postfix accepted it (250 queued as …)
    await event;
    const row = await message(id);
    expect(row.bounce_kind).toBe('hard');
    expect(row.bounce_reason).toMatch(/5\.1\.1|User unknown/i);
    expect(await suppression('nobody@mx.parley.test')).toMatchObject({
      reason: 'hard_bounce',
      message_id: id,
    });
    const ev = await deps.db.selectFrom('email_events').selectAll().where('message_id', '=', id).execute();
    expect(ev).toHaveLength(1);
    expect(ev[0].data).toMatchObject({ kind: 'hard', status: '5.1.1', source: 'dsn' });
    // Postfix handed the DSN to our listener, which answered 250.
    expect(postfix.log()).toMatch(
      /relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent \(250 Ok: bounce received\)/,
    );
  });

  it('a full mailbox (5.2.2) is a soft bounce: recorded, not suppressed yet', async () => {
    const id = await queue('full@mx.parley.test');
    const event = nextEvent();
    expect((await deliverDue(deps, { orgId: org.orgId })).sent).toBe(1);
    await event;
    expect((await message(id)).bounce_kind).toBe('soft');
    expect(await suppression('full@mx.parley.test')).toBeUndefined();
  });
});
