// `parley serve` with PARLEY_BOUNCE_SMTP_PORT set starts the bounce listener next to the API: a
// real process on the test database, told its ports by the environment, receiving a DSN over SMTP
// and refusing a forged return path. A second process with the same settings keeps running and
// says that another one receives bounces.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { verpReturnPath } from '../src/sending/verp.ts';
import { createTestOrg, testDeps } from './support/app.ts';
import { dsn, smtpSend } from './support/bounce-mail.ts';
import { freePort } from './support/mail-peers.ts';

const deps = testDeps();
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(
    children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))),
  );
  await deps.close();
});

/** Starts `parley serve` and resolves with its output once `until` appears in it. */
function serve(bouncePort: number, until: RegExp): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, ['bin/parley.mjs', 'serve'], {
    env: {
      ...process.env,
      PARLEY_DATABASE_URL: inject('dbUrl'),
      PARLEY_SECRET: deps.config.secret,
      PARLEY_PORT: '0',
      PARLEY_LOG_LEVEL: 'warn',
      PARLEY_BOUNCE_SMTP_PORT: String(bouncePort),
      PARLEY_BOUNCE_SMTP_HOST: '127.0.0.1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const check = (d: Buffer) => {
      out += d.toString();
      if (until.test(out)) resolve({ child, out: () => out });
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', (code) => reject(new Error(`parley serve exited (${code}):\n${out}`)));
  });
}

describe('parley serve with the bounce listener', () => {
  it('receives bounces on the configured port', async () => {
    const port = await freePort();
    await serve(port, /Bounces are received by SMTP on 127\.0\.0\.1:\d+/);
    const org = await createTestOrg(deps);
    const to = `cli-${randomBytes(4).toString('hex')}@remote.example`;
    const m = await deps.db
      .insertInto('messages')
      .values({
        org_id: org.orgId,
        kind: 'individual',
        from_address: org.adminEmail,
        to_address: to,
        subject: 'Hello',
        text: 'Hello',
        message_id_header: `<cli.${randomBytes(6).toString('hex')}@bounces.parley.test>`,
        transport: 'relay',
        status: 'sent',
        sent_at: new Date(),
        expires_at: new Date(Date.now() + 86_400_000),
      })
      .returning(['id', 'message_id_header'])
      .executeTakeFirstOrThrow();
    const verp = verpReturnPath(m.id, 'bounces.parley.test', deps.config.secret as string);
    const forged = verpReturnPath(m.id, 'bounces.parley.test', 'not-the-secret-0123456789-0123456789');
    const r = await smtpSend(
      port,
      '',
      [forged, verp],
      dsn({
        to: verp,
        recipient: to,
        status: '5.1.1',
        diagnostic: 'user unknown',
        messageId: m.message_id_header,
      }),
    );
    expect(r).toMatchObject({ rcpt: [550, 250], data: 250 });
    const row = await deps.db
      .selectFrom('messages')
      .select('bounce_kind')
      .where('id', '=', m.id)
      .executeTakeFirstOrThrow();
    expect(row.bounce_kind).toBe('hard');

    // The same settings in a second process: it runs, and says who receives bounces.
    const second = await serve(port, /Parley is ready at/);
    expect(second.out()).toMatch(/another process receives bounces/);
    expect(second.child.exitCode).toBeNull();
  });
});
