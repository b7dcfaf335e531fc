import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, describe, expect, it } from 'vitest';
import { type DkimKey, dkimSignatureHeaders, generateDkimKey, loadDkimKey } from './dkim.ts';
import { buildMessage } from './mime.ts';
import { createSignPool } from './sign-pool.ts';

const rsa = generateDkimKey('rsa-sha256');
const ed = generateDkimKey('ed25519-sha256');
const keys: DkimKey[] = [
  loadDkimKey({ domain: 'example.com', selector: 'r', privateKey: rsa.privateKeyPem }),
  loadDkimKey({ domain: 'example.com', selector: 'e', privateKey: ed.privateKeyPem }),
];
const txt: Record<string, string> = {
  'r._domainkey.example.com': rsa.dnsValue,
  'e._domainkey.example.com': ed.dnsValue,
};
const resolver = async (name: string) => [[txt[name]]];

function messages(n: number, tag = 'm') {
  return Array.from({ length: n }, (_, i) =>
    buildMessage({
      from: { address: 'sales@example.com' },
      to: { address: `r${i}@example.org` },
      subject: `Hello ${i}`,
      text: `Text ${i}`,
      html: `<p>${tag} ${i}</p>`,
      messageIdHeader: `<${tag}${i}@example.com>`,
      date: new Date(),
    }),
  );
}

const pool = createSignPool({ size: 2, chunkSize: 7, now: () => 1_700_000_000 });
afterAll(() => pool.close());

describe('sign pool', () => {
  it('signs batches in worker threads exactly as the in-thread signer does', async () => {
    const raws = messages(30);
    const expected = raws.map((r) =>
      Buffer.concat([Buffer.from(dkimSignatureHeaders(r, keys, { time: 1_700_000_000 }), 'latin1'), r]),
    );
    const signed = await pool.signMessages(keys, raws);
    expect(signed).toHaveLength(30);
    for (let i = 0; i < raws.length; i++) expect(signed[i].equals(expected[i])).toBe(true);
    for (const m of signed.slice(0, 3)) {
      const r = await dkimVerify(m, { resolver });
      expect(r.results.map((x) => x.status.result)).toEqual(['pass', 'pass']);
    }
  });

  it('keeps several key sets apart and runs batches concurrently', async () => {
    const other = [loadDkimKey({ domain: 'example.com', selector: 'r', privateKey: rsa.privateKeyPem })];
    const [a, b] = await Promise.all([
      pool.signMessages(keys, messages(20, 'a')),
      pool.signMessages(other, messages(20, 'b')),
    ]);
    const count = (m: Buffer) => (m.toString('latin1').match(/^DKIM-Signature/gm) ?? []).length;
    expect(a.every((m) => count(m) === 2)).toBe(true);
    expect(b.every((m) => count(m) === 1)).toBe(true);
  });

  it('rejects a failing message batch with the reason and keeps working', async () => {
    await expect(
      pool.signMessages(keys, [Buffer.from('To: a@example.org\r\n\r\nno from\r\n')]),
    ).rejects.toThrow(/cannot DKIM-sign a message without a From header/);
    expect(await pool.signMessages(keys, messages(2))).toHaveLength(2);
  });

  it('rejects the batches of a crashed worker, respawns it, and signs again', async () => {
    const big = messages(400, 'c');
    const inFlight = pool.signMessages(keys, big); // spread over both workers, 7 per chunk
    await pool.crashWorkerForTest(0);
    await expect(inFlight).rejects.toThrow(/worker exited \(code 1\) with a batch in flight/);
    const after = await pool.signMessages(keys, messages(20, 'd'));
    expect(after).toHaveLength(20);
  });

  it('closes cleanly after the batches in flight, and refuses work afterwards', async () => {
    const p = createSignPool({ size: 1 });
    const pending = p.signMessages(keys, messages(50));
    await p.close();
    expect(await pending).toHaveLength(50);
    await expect(p.signMessages(keys, messages(1))).rejects.toThrow(/closed/);
  });
});
