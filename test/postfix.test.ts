// Postfix from Debian as the org's relay (a private instance started by the test), with smtp-sink
// and an in-process server playing the remote MXs. Parley → Postfix always ends at Postfix's 250
// ("queued as …"); what happens further on (delivery, greylisting retries, bounces) is Postfix's,
// and a bounce comes back as a DSN to the message's VERP return path.

import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../src/crm/index.ts';
import { deliverDue } from '../src/sending/delivery.ts';
import { addDkimKey, type DkimKeyView } from '../src/sending/dkim-keys.ts';
import { saveRelay } from '../src/sending/relays.ts';
import { closeRelayTransports } from '../src/sending/transport.ts';
import { parseVerp } from '../src/sending/verp.ts';
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
let org: TestOrg;
let dkim: DkimKeyView;
let greylisted = new Set<string>();

beforeAll(async () => {
  sink = await startSmtpSink();
  mx = await startCaptureServer({
    onRcpt(address) {
      if (address.startsWith('nobody@')) throw smtpError(550, '5.1.1 <nobody@mx.parley.test>: no such user');
      if (greylisted.has(address)) {
        greylisted.delete(address); // the next try passes, as with real greylisting
        throw smtpError(451, '4.7.1 greylisted, come back later');
      }
    },
  });
  // Everything goes to smtp-sink, but mail for mx.parley.test and for our bounce domain (DSNs to
  // VERP return paths) goes to the capture server.
  postfix = await startPostfixRelay(sink, { 'mx.parley.test': mx, 'bounces.parley.test': mx });
  org = await createTestOrg(deps);
  const actor: Actor = {
    orgId: org.orgId,
    userId: org.adminId,
    isAdmin: true,
    permissions: {} as Actor['permissions'],
    timeZone: 'UTC',
    locale: 'en',
  };
  await saveRelay(deps, actor, {
    host: '127.0.0.1',
    port: postfix.port,
    security: 'none',
    sendingDomain: 'bounces.parley.test',
  });
  dkim = await addDkimKey(deps, actor, { domain: 'test.example', selector: 'pf1' });
}, 60_000);

afterAll(async () => {
  closeRelayTransports(deps);
  await postfix?.stop();
  await sink?.stop();
  await mx?.stop();
  await deps.close();
});

let n = 0;
function queue(to: string): Promise<string> {
  const i = ++n;
  return queueMessage(deps, org, {
    to_address: to,
    subject: `Through Postfix ${i}`,
    html: `<p>Hello from Parley, message ${i}</p>`,
    text: `Hello from Parley, message ${i}\n.dot-stuffed line\n`,
    message_id_header: `<pf${i}.${Date.now()}@bounces.parley.test>`,
    transport: 'relay',
  });
}

const message = (id: string) =>
  deps.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

const resolver = async (name: string, type: string) => {
  if (type !== 'TXT' || name !== dkim.dnsRecord.name)
    throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
  return [[dkim.dnsRecord.value]];
};

describe('Postfix as the relay', () => {
  it('accepts the message (250 queued as …) and delivers it to the remote MX intact', async () => {
    const id = await queue('jane@remote.example');
    expect(await deliverDue(deps, { orgId: org.orgId })).toMatchObject({ claimed: 1, sent: 1 });
    const row = await message(id);
    expect(row).toMatchObject({ status: 'sent', transport: 'relay', smtp_code: 250 });
    expect(row.smtp_response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-F]+/);
    const [got] = await sink.waitFor(1);
    expect(parseVerp(got.mailFrom, deps.config.secret as string)).toBe(id);
    expect(got.rcptTo).toEqual(['jane@remote.example']);
    const parsed = await simpleParser(got.raw);
    expect(parsed.messageId).toBe(row.message_id_header);
    expect(parsed.text).toContain('\n.dot-stuffed line');
    // Postfix added its Received line; the DKIM signature still verifies at the far end.
    expect(got.raw.toString('latin1')).toMatch(
      /^Received: from .*\r\n\s+by relay\.parley\.test \(Postfix\)/m,
    );
    const v = await dkimVerify(got.raw, { resolver });
    expect(v.results[0].status.result).toBe('pass');
  });

  it('greylisting at the remote MX is Postfix’s to retry: the message still arrives', async () => {
    greylisted = new Set(['later@mx.parley.test']);
    const id = await queue('later@mx.parley.test');
    expect((await deliverDue(deps, { orgId: org.orgId })).sent).toBe(1);
    // Postfix retries by itself within seconds (1 s backoff); on a loaded machine its queue manager
    // can be slower, so after 10 s it is asked to flush its queue, as an operator would.
    const got = await mx.waitFor(1, 10_000).catch(() => {
      postfix.flush();
      return mx.waitFor(1, 30_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${postfix.log()}`);
      });
    });
    expect(got.find((m) => m.rcptTo.includes('later@mx.parley.test'))).toBeTruthy();
    expect((await message(id)).status).toBe('sent');
    expect(postfix.log()).toMatch(/to=<later@mx\.parley\.test>.*status=deferred.*greylisted/);
  });

  it('a remote 5xx comes back as a DSN to the VERP return path, which names the message', async () => {
    const before = mx.messages.length;
    const id = await queue('nobody@mx.parley.test');
    expect((await deliverDue(deps, { orgId: org.orgId })).sent).toBe(1);
    const all = await mx.waitFor(before + 1, 20_000);
    const dsn = all.slice(before).find((m) => m.mailFrom === '');
    expect(dsn).toBeTruthy();
    expect(dsn?.rcptTo).toHaveLength(1);
    expect(parseVerp(dsn?.rcptTo[0] as string, deps.config.secret as string)).toBe(id);
    const report = dsn?.raw.toString('latin1') ?? '';
    expect(report).toMatch(/Content-Type: multipart\/report; report-type=delivery-status/);
    expect(report).toMatch(/Status: 5\.1\.1/);
    expect(report).toContain((await message(id)).message_id_header);
  });
});
