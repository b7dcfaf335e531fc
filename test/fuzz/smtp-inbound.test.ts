import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorForUser } from '../../src/crm/auth.service.ts';
import type { Deps } from '../../src/deps.ts';
import { getDropboxAddress } from '../../src/mailbox/dropbox/address.ts';
import { verpReturnPath } from '../../src/sending/verp.ts';
import { type BounceListener, startBounceListener } from '../../src/tracking/bounces/inbound.ts';
import { createTestOrg, testDeps } from '../support/app.ts';
import { arf, dsn, proseBounce } from '../support/bounce-mail.ts';
import { cases, FUZZ_TIMEOUT, fuzzOptions, mutated } from './support.ts';

// The inbound SMTP listener (bounces, feedback loops, the BCC dropbox) faces the internet. Over
// real SMTP, random sessions (mutated commands, bad and huge addresses, huge lines, bare LFs,
// pipelining, binary, messages of every shape) must get well-formed replies with sensible codes,
// never a hang, and the listener must keep serving everyone else.

const CONCURRENT = 50;
const SESSIONS = cases(300);
const REPLY_MS = 10_000; // a reply slower than this is a hang
const MAX_BYTES = 64 * 1024;

let deps: Deps & { close(): Promise<void> };
let listener: BounceListener;
let secret: string;
let dropbox: string;

beforeAll(async () => {
  deps = testDeps();
  secret = deps.config.secret as string;
  listener = await startBounceListener(deps, { port: 0, host: '127.0.0.1', maxBytes: MAX_BYTES });
  const org = await createTestOrg(deps);
  dropbox = (await getDropboxAddress(deps, (await actorForUser(deps, { userId: org.adminId }))!)).address;
});
afterAll(async () => {
  await listener?.close();
  await deps?.close();
});

/** A raw SMTP client: every reply parsed, every wait bounded. */
class Session {
  private buf = '';
  private replies: string[] = [];
  private waiters: ((r: string | null) => void)[] = [];
  closed = false;
  readonly sock: net.Socket;
  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d) => {
      this.buf += d.toString('latin1');
      for (;;) {
        const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.buf);
        if (!m) break;
        this.buf = this.buf.slice(m[0].length);
        const w = this.waiters.shift();
        if (w) w(m[0]);
        else this.replies.push(m[0]); // pipelined: read later, in order
      }
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    };
    this.sock.on('close', end);
    this.sock.on('error', end);
  }
  /** The next reply, or null when the server closed the connection first. */
  reply(): Promise<string | null> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(new Error(`no reply in ${REPLY_MS} ms (buffer ${JSON.stringify(this.buf.slice(0, 200))})`)),
        REPLY_MS,
      );
      this.waiters.push((r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  }
  /** UTF-8 (no character but CR and LF makes a line break); latin1 for raw bytes. */
  write(data: string, encoding: BufferEncoding = 'utf8') {
    if (!this.closed) this.sock.write(Buffer.from(data, encoding));
  }
  close() {
    this.sock.destroy();
  }
}

/** A well-formed reply: every line NNN, the same code, 2xx to 5xx. */
function checkReply(r: string): number {
  const lines = r.replace(/\r?\n$/, '').split(/\r?\n/);
  const code = Number(r.slice(0, 3));
  expect(code).toBeGreaterThanOrEqual(200);
  expect(code).toBeLessThan(600);
  for (const l of lines) expect(l.slice(0, 3)).toBe(String(code));
  return code;
}

// ---- what a session sends ------------------------------------------------------------------------

const uuid = fc.uuid();
const goodVerp = uuid.map((id) => verpReturnPath(id, 'bounces.parley.test', secret));
const address = fc.oneof(
  goodVerp,
  goodVerp.map((a) => a.toUpperCase()),
  goodVerp.map((a) => a.replace(/-([a-z2-7])/, '-$1$1')), // altered tag
  uuid.map((id) => `b-${id.replaceAll('-', '')}-aaaaaaaaaaaaaaaa@bounces.parley.test`), // forged
  fc.constantFrom(
    'fbl@bounces.parley.test',
    'FBL@x.test',
    '',
    'postmaster',
    '@',
    'a@',
    '"quoted local"@x.test',
    'dropbox-@x.test',
  ),
  fc.constant('DROPBOX'), // replaced by the org's real dropbox address
  fc.stringMatching(/^dropbox-[a-z2-7]{32}@x\.test$/), // a well-formed but unknown dropbox
  fc.emailAddress(),
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.integer({ min: 300, max: 20_000 }).map((n) => `${'a'.repeat(n)}@x.test`),
);
const smtpAddr = (a: string) => (a === 'DROPBOX' ? dropbox : a);

const message = fc.oneof(
  fc
    .record({
      to: fc.constant('x@y.test'),
      recipient: fc.emailAddress(),
      status: fc.constantFrom('5.1.1', '4.2.2', '5.7.1'),
      diagnostic: fc.string(),
      messageId: fc.constant('<m@x.test>'),
    })
    .map(dsn),
  fc
    .record({
      to: fc.constant('x@y.test'),
      recipient: fc.emailAddress(),
      messageId: fc.constant('<m@x.test>'),
    })
    .map(proseBounce),
  fc
    .record({
      to: fc.constant('x@y.test'),
      recipient: fc.emailAddress(),
      messageId: fc.constant('<m@x.test>'),
    })
    .map(arf),
  fc.constant(
    'From: a@b.test\r\nTo: c@d.test\r\nSubject: hello\r\nMessage-ID: <hi@b.test>\r\n\r\nJust mail.\r\n',
  ),
);
const body = fc.oneof(
  { arbitrary: message, weight: 3 },
  mutated(message, fc.constantFrom('\r\n.\r\n', '\n.\n', '\r\n..\r\n', '\u0000', '\r', '\n', '\xff\xfe')),
  fc.string({ unit: 'binary', maxLength: 2_000 }),
  fc.integer({ min: 1_000, max: 60_000 }).map((n) => `Subject: long\r\n\r\n${'x'.repeat(n)}\r\n`), // one huge line
  fc.constant(`Subject: big\r\n\r\n${'0123456789abcdef\r\n'.repeat(Math.ceil((MAX_BYTES * 1.5) / 18))}`), // over the limit
);

type Step =
  | { k: 'line'; text: string }
  | { k: 'pipeline'; lines: string[] }
  | { k: 'data'; body: string; stuff: boolean }
  | { k: 'raw'; bytes: string };

const param = fc.constantFrom(
  '',
  ' SIZE=100',
  ' SIZE=99999999999',
  ' SIZE=x',
  ' BODY=8BITMIME',
  ' SMTPUTF8',
  ' FOO=bar',
  ` ${'X'.repeat(600)}`,
);
const command: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('EHLO', 'HELO', 'ehlo', 'LHLO'),
      fc.oneof(fc.constantFrom('', 'mx.remote.test', '[127.0.0.1]'), fc.string({ maxLength: 40 })),
    )
    .map(([c, h]) => `${c} ${h}`),
  fc.tuple(address, param).map(([a, p]) => `MAIL FROM:<${smtpAddr(a)}>${p}`),
  fc.tuple(address, param).map(([a, p]) => `RCPT TO:<${smtpAddr(a)}>${p}`),
  address.map((a) => `RCPT TO:${smtpAddr(a)}`),
  fc.constantFrom(
    'MAIL FROM:<>',
    'MAIL FROM:',
    'RCPT TO:',
    'MAIL',
    'RSET',
    'NOOP',
    'VRFY postmaster',
    'EXPN list',
    'HELP',
    'STARTTLS',
    'AUTH PLAIN AGlkAHB3',
    'BDAT 10 LAST',
    'TURN',
    'DATA',
    '',
  ),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }).map((s) => s.replace(/[\r\n]/g, '')),
  fc.integer({ min: 500, max: 50_000 }).map((n) => `NOOP ${'x'.repeat(n)}`),
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: command.map((text) => ({ k: 'line' as const, text })), weight: 8 },
  fc
    .array(
      fc.constantFrom(
        'RSET',
        'NOOP',
        'MAIL FROM:<a@b.test>',
        'RCPT TO:<fbl@x.test>',
        'RCPT TO:<nobody@x.test>',
      ),
      { minLength: 2, maxLength: 6 },
    )
    .map((lines) => ({ k: 'pipeline' as const, lines })),
  {
    arbitrary: fc.record({ body, stuff: fc.boolean() }).map((d) => ({ k: 'data' as const, ...d })),
    weight: 3,
  },
  fc
    .oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.constantFrom('NOOP\n', 'NOOP\r', '\r\n\r\n', 'RSET\r\nNOOP\r\n'),
    )
    .map((bytes) => ({ k: 'raw' as const, bytes })),
);
/** Most sessions open properly (so that RCPT and DATA are reached), then go astray. */
const session = fc.tuple(
  fc.boolean(),
  fc.array(goodVerp, { maxLength: 3 }),
  fc.array(step, { minLength: 1, maxLength: 12 }),
  fc.constantFrom('QUIT', 'drop', 'half'),
);

async function runSession([polite, verps, steps, ending]: typeof session extends fc.Arbitrary<infer T>
  ? T
  : never) {
  const s = new Session(listener.port);
  const codes: number[] = [];
  const trace: string[] = [];
  const origWrite = s.write.bind(s);
  s.write = (d: string, enc?: BufferEncoding) => {
    trace.push(`> ${JSON.stringify(d.length > 120 ? `${d.slice(0, 60)}…(${d.length})…${d.slice(-30)}` : d)}`);
    origWrite(d, enc);
  };
  const expectReply = async () => {
    const r = await s.reply().catch((e) => {
      console.log('TRACE', trace.join('\n'));
      throw e;
    });
    trace.push(`< ${JSON.stringify(r)}`);
    if (r !== null) codes.push(checkReply(r));
    return r;
  };
  try {
    const greeting = await expectReply();
    expect(greeting?.startsWith('220')).toBe(true);
    const all: Step[] = polite
      ? [
          { k: 'line', text: 'EHLO mx.remote.test' },
          { k: 'line', text: 'MAIL FROM:<>' },
          ...verps.map((v) => ({ k: 'line' as const, text: `RCPT TO:<${v}>` })),
          ...steps,
        ]
      : steps;
    for (const st of all) {
      if (s.closed) break;
      if (st.k === 'line') {
        s.write(`${st.text}\r\n`);
        const r = await expectReply();
        // A 354 opens the data phase: end it at once with an empty message.
        if (r?.startsWith('354')) {
          s.write('.\r\n');
          await expectReply();
        }
      } else if (st.k === 'pipeline') {
        s.write(st.lines.map((l) => `${l}\r\n`).join(''));
        for (const _ of st.lines) if ((await expectReply()) === null) break;
      } else if (st.k === 'data') {
        s.write('DATA\r\n');
        const go = await expectReply();
        if (!go?.startsWith('354')) continue;
        const text = st.stuff ? st.body.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..') : st.body;
        s.write(`${text}${text.endsWith('\r\n') ? '' : '\r\n'}.\r\n`);
        // Without dot-stuffing, a line "." in the body ends the message early and the rest is read
        // as commands: as many replies as the server gives, then the session carries on.
        const r = await expectReply();
        if (r && !st.stuff) {
          s.write('HELP\r\n');
          for (let i = 0; i < 1_000 && !s.closed; i++) {
            const more = await expectReply();
            if (more === null || more.startsWith('214')) break;
          }
        }
      } else {
        // Raw bytes make any number of commands: sync on HELP's 214 and read until it.
        s.write(st.bytes, 'latin1');
        s.write('\r\nHELP\r\n');
        for (let i = 0; i < 50 && !s.closed; i++) {
          const r = await expectReply();
          if (r === null || r.startsWith('214')) break;
        }
      }
    }
    if (ending === 'QUIT' && !s.closed) {
      s.write('QUIT\r\n');
      const bye = await expectReply();
      if (bye !== null) expect(bye.startsWith('221'), trace.join('\n')).toBe(true);
    } else if (ending === 'half') s.sock.end();
  } finally {
    s.close();
  }
  return codes;
}

/** A fresh connection is greeted and a bounce to a signed return path is taken. */
async function stillServing() {
  const s = new Session(listener.port);
  try {
    expect((await s.reply())?.slice(0, 3)).toBe('220');
    for (const [cmd, code] of [
      ['EHLO check.test', '250'],
      ['MAIL FROM:<>', '250'],
      [`RCPT TO:<${verpReturnPath(crypto.randomUUID(), 'bounces.parley.test', secret)}>`, '250'],
      ['DATA', '354'],
    ]) {
      s.write(`${cmd}\r\n`);
      expect((await s.reply())?.slice(0, 3), cmd).toBe(code);
    }
    s.write(
      `${dsn({ to: 'x@y.test', recipient: 'gone@x.test', status: '5.1.1', diagnostic: 'user unknown', messageId: '<m@x.test>' })}\r\n.\r\n`,
    );
    expect((await s.reply())?.slice(0, 3)).toBe('250');
  } finally {
    s.close();
  }
}

describe('fuzz: inbound SMTP listener', () => {
  it(
    'answers random sessions with well-formed replies, never hangs, and keeps serving',
    async () => {
      const seen = new Map<number, number>();
      let n = 0;
      // The listener holds every new connection ~100 ms (smtp-server's early-talker check), so
      // sessions run CONCURRENT at a time; each session is one case.
      await fc.assert(
        fc.asyncProperty(
          fc.array(session, { minLength: CONCURRENT, maxLength: CONCURRENT }),
          async (batch) => {
            for (const codes of await Promise.all(batch.map(runSession)))
              for (const c of codes) seen.set(c, (seen.get(c) ?? 0) + 1);
            n += batch.length;
            if (n % 500 === 0) await stillServing();
          },
        ),
        fuzzOptions('inbound SMTP (batches of concurrent sessions)', SESSIONS / CONCURRENT, 60_000),
      );
      await stillServing();
      const codes = [...seen.entries()].sort(([a], [b]) => a - b).map(([c, k]) => `${c}×${k}`);
      console.log(`fuzz inbound SMTP: ${n} sessions, replies ${codes.join(' ')}`);
      // The sessions reach every phase: greeting, accepted and refused recipients, data, too big.
      for (const c of [220, 250, 354, 550, 221]) expect(seen.get(c), `reply ${c}`).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT,
  );
});
