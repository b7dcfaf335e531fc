// Bounces and look-alikes as providers and mail servers send them (test/fixtures/bounces: Gmail,
// Yahoo, Outlook, SES, SendGrid, Mail.ru, GMX, Orange, Libero, QQ, docomo …; Postfix, Exim,
// Sendmail, qmail, Courier, Exchange in three languages, Office 365, Domino, GroupWise, MDaemon,
// Mimecast, Barracuda, Proofpoint, IronPort …; vacation replies, receipts, a person's reply): each
// file's failed recipients, kinds and codes, in order, as expected.jsonl says.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyBounce } from './classify.ts';

const dir = join(import.meta.dirname, '../../../test/fixtures/bounces');
const expected = readFileSync(join(dir, 'expected.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map(
    (l) =>
      JSON.parse(l) as { file: string; bounce: boolean; recipient?: string; kind?: string; status?: string },
  );
const files = readdirSync(dir).filter((f) => f.endsWith('.eml'));

describe('bounces recorded from providers and mail servers', () => {
  it('has an expectation for every file and a file for every expectation', () => {
    expect(new Set(expected.map((e) => e.file))).toEqual(new Set(files));
  });

  it.each(files)('%s', async (file) => {
    const r = await classifyBounce(readFileSync(join(dir, file)));
    const got = r.bounce ? r.recipients.map((x) => `${x.recipient} ${x.kind} ${x.status}`) : ['not a bounce'];
    const want = expected
      .filter((e) => e.file === file)
      .map((e) => (e.bounce ? `${e.recipient} ${e.kind} ${e.status}` : 'not a bounce'));
    expect(got).toEqual(want);
  });
});
