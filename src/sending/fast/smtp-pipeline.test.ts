import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { buildMessage } from '../mime.ts';
import { createSmtpPipelinePool, dotStuff, type SmtpPipelineOptions } from './smtp-pipeline.ts';

interface Received {
  from: string;
  to: string[];
  data: Buffer;
}

const servers: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** An in-process smtp-server that records what arrives; `options` injects behaviour. */
async function startServer(options: Partial<SMTPServerOptions> = {}) {
  const received: Received[] = [];
  const sessions = new Set<string>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onConnect(session, cb) {
      sessions.add(session.id);
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
        });
        cb();
      });
    },
    ...options,
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  servers.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
  return { port, received, sessions, server };
}

function message(i: number, text = `Hello ${i}\n`) {
  return buildMessage({
    from: { address: 'sales@example.com' },
    to: { address: `r${i}@example.org` },
    subject: `Message ${i}`,
    text,
    html: `<p>${i}</p>`,
    messageIdHeader: `<m${i}@example.com>`,
    date: new Date('2025-01-01T00:00:00Z'),
  });
}

const envelope = (i: number) => ({ from: `b-${i}@bounce.example.com`, to: [`r${i}@example.org`] });

function pool(port: number, extra: Partial<SmtpPipelineOptions> = {}) {
  return createSmtpPipelinePool({ host: '127.0.0.1', port, connections: 3, ...extra });
}

describe('dotStuff', () => {
  const join = (parts: Buffer[]) => Buffer.concat(parts).toString('latin1');
  it('doubles leading dots, normalises bare CR/LF, ends with CRLF.CRLF', () => {
    expect(join(dotStuff(Buffer.from('a\r\n.b\r\n..c\r\n')))).toBe('a\r\n..b\r\n...c\r\n.\r\n');
    expect(join(dotStuff(Buffer.from('.x\r\ny')))).toBe('..x\r\ny\r\n.\r\n');
    expect(join(dotStuff(Buffer.from('a\n.\nb\r.c\r\n')))).toBe('a\r\n..\r\nb\r\n..c\r\n.\r\n');
  });
  it('does not copy a clean message', () => {
    const raw = Buffer.from('a\r\nb\r\n');
    expect(dotStuff(raw)[0]).toBe(raw);
  });
});

describe('SMTP pipeline', () => {
  it('delivers many messages byte for byte over a few pipelined connections', async () => {
    const s = await startServer();
    const p = pool(s.port);
    const raws = Array.from({ length: 120 }, (_, i) =>
      message(i, i % 7 ? `Hello ${i}\n` : `.dot ${i}\n..two\n.\n`),
    );
    const results = await Promise.all(raws.map((raw, i) => p.send(envelope(i), raw)));
    expect(results.every((r) => r.status === 'sent' && r.code === 250 && r.stage === 'END')).toBe(true);
    expect(s.received).toHaveLength(120);
    for (const got of s.received) {
      const i = Number(got.to[0].slice(1, got.to[0].indexOf('@')));
      expect(got.from).toBe(`b-${i}@bounce.example.com`);
      expect(got.data.equals(raws[i])).toBe(true);
    }
    expect(s.sessions.size).toBeLessThanOrEqual(3);
    await p.close();
  });

  it('closing sends what it accepted, on new connections if need be, then closes them all', async () => {
    let open = 0;
    let connects = 0;
    const s = await startServer({
      onConnect(_session, cb) {
        open++;
        connects++;
        cb();
      },
      onClose() {
        open--;
      },
    });
    // one connection of 2 messages: the 6 accepted need three, opened while the pool closes
    const p = pool(s.port, { connections: 1, maxMessagesPerConnection: 2 });
    const sent = Array.from({ length: 6 }, (_, i) => p.send(envelope(i), message(i)));
    const closed = p.close();
    await expect(p.send(envelope(9), message(9))).rejects.toThrow(/closed/);
    expect((await Promise.all(sent)).map((r) => r.status)).toEqual(Array(6).fill('sent'));
    await closed;
    expect(p.close()).toBe(closed); // closing twice waits for the same close
    expect(s.received).toHaveLength(6);
    expect(connects).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(open).toBe(0);
  });

  it('records refusals at each step and keeps using the connection', async () => {
    const s = await startServer({
      onMailFrom(address, _session, cb) {
        if (address.address.startsWith('b-1@'))
          return cb(Object.assign(new Error('sender refused'), { responseCode: 553 }));
        cb();
      },
      onRcptTo(address, _session, cb) {
        if (address.address.startsWith('r2@'))
          return cb(Object.assign(new Error('user unknown'), { responseCode: 550 }));
        if (address.address.startsWith('r3@'))
          return cb(Object.assign(new Error('greylisted'), { responseCode: 451 }));
        cb();
      },
      onData(stream, session, cb) {
        stream.on('data', () => {});
        stream.on('end', () => {
          const to = session.envelope.rcptTo[0].address;
          if (to.startsWith('r4@'))
            return cb(Object.assign(new Error('content rejected'), { responseCode: 554 }));
          if (to.startsWith('r5@')) return cb(Object.assign(new Error('try later'), { responseCode: 452 }));
          cb();
        });
      },
    });
    const p = pool(s.port, { connections: 1 });
    const results = await Promise.all([0, 1, 2, 3, 4, 5, 6].map((i) => p.send(envelope(i), message(i))));
    expect(results.map((r) => [r.status, r.code, r.stage])).toEqual([
      ['sent', 250, 'END'],
      ['failed', 553, 'MAIL'],
      ['failed', 550, 'RCPT'],
      ['deferred', 451, 'RCPT'],
      ['failed', 554, 'END'],
      ['deferred', 452, 'END'],
      ['sent', 250, 'END'],
    ]);
    expect(results[2].response).toMatch(/user unknown/);
    await p.close();
  });

  it('works one command at a time when the server does not offer PIPELINING', async () => {
    const s = await startServer({ hidePIPELINING: true } as Partial<SMTPServerOptions>);
    const p = pool(s.port, { connections: 1 });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => p.send(envelope(i), message(i))));
    expect(results.every((r) => r.status === 'sent')).toBe(true);
    expect(s.received.map((r) => r.to[0])).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}@example.org`));
    await p.close();
  });

  it('uses STARTTLS and AUTH when asked', async () => {
    const s = await startServer({
      disabledCommands: [],
      authOptional: false,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _session, cb) {
        if (auth.username === 'u' && auth.password === 'p') return cb(null, { user: 'u' });
        cb(new Error('bad credentials'));
      },
    });
    const ok = pool(s.port, {
      security: 'starttls',
      auth: { user: 'u', pass: 'p' },
      tls: { rejectUnauthorized: false },
    });
    expect((await ok.send(envelope(1), message(1))).status).toBe('sent');
    await ok.close();
    const bad = pool(s.port, {
      security: 'starttls',
      auth: { user: 'u', pass: 'x' },
      tls: { rejectUnauthorized: false },
    });
    const r = await bad.send(envelope(2), message(2));
    expect(r).toMatchObject({ status: 'deferred', stage: 'CONN' });
    expect(r.response).toMatch(/AUTH/);
    expect(s.received).toHaveLength(1);
    await bad.close();
  });

  it('refuses an address that needs SMTPUTF8 when the server lacks it', async () => {
    const s = await startServer({ hideSMTPUTF8: true } as Partial<SMTPServerOptions>);
    const p = pool(s.port);
    const r = await p.send({ from: 'b@bounce.example.com', to: ['jürgen@example.de'] }, message(1));
    expect(r).toMatchObject({ status: 'failed', stage: 'MAIL' });
    expect((await p.send(envelope(2), message(2))).status).toBe('sent');
    await p.close();
  });

  it('refuses envelope addresses that could inject SMTP commands', async () => {
    const s = await startServer();
    const p = pool(s.port);
    const r = await p.send(
      { from: 'a@example.com>\r\nRCPT TO:<victim@example.net', to: ['r@example.org'] },
      message(1),
    );
    expect(r).toMatchObject({ status: 'failed', stage: 'MAIL' });
    expect(s.received).toHaveLength(0);
    await p.close();
  });

  it('defers when the relay cannot be reached', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    await new Promise<void>((r) => blocker.close(() => r()));
    const p = pool(port);
    const results = await Promise.all([1, 2, 3].map((i) => p.send(envelope(i), message(i))));
    for (const r of results) expect(r).toMatchObject({ status: 'deferred', code: null, stage: 'CONN' });
  });

  it('connection lost after the whole message: unknown; before it: deferred; others go on', async () => {
    let drops = 0;
    const s = await startServer({
      onRcptTo(address, session, cb) {
        // r1: the connection dies before the message is sent
        if (address.address.startsWith('r1@') && drops++ === 0) return destroy(session);
        cb();
      },
      onData(stream, session, cb) {
        stream.on('data', () => {});
        stream.on('end', () => {
          // r2: the whole message arrived, the connection dies before the reply
          if (session.envelope.rcptTo[0].address.startsWith('r2@')) return destroy(session);
          cb();
        });
      },
    });
    // smtp-server does not hand its sockets to the hooks: find them by the client's port.
    const sockets = new Map<string, Socket>();
    s.server.server.on('connection', (sock: Socket) => {
      sockets.set(`${sock.remotePort}`, sock);
    });
    function destroy(session: { remotePort: number }) {
      sockets.get(`${session.remotePort}`)?.destroy();
    }
    const p = pool(s.port, { connections: 1 });
    const r1 = await p.send(envelope(1), message(1));
    expect(r1).toMatchObject({ status: 'deferred', stage: 'CONN', code: null });
    const r2 = await p.send(envelope(2), message(2));
    expect(r2).toMatchObject({ status: 'unknown', stage: 'END', code: null });
    expect(r2.response).toMatch(/may have been delivered/);
    const r3 = await p.send(envelope(3), message(3));
    expect(r3.status).toBe('sent');
    await p.close();
  });
});

// Postfix's smtp-sink: a real MTA implementation of PIPELINING, with fault injection.
const SMTP_SINK = '/usr/sbin/smtp-sink';
describe.skipIf(!existsSync(SMTP_SINK))('SMTP pipeline against Postfix smtp-sink', () => {
  async function sink(flags: string[]) {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const child: ChildProcess = spawn(SMTP_SINK, [...flags, `127.0.0.1:${port}`, '100'], { stdio: 'ignore' });
    servers.push({
      close: () =>
        new Promise<void>((r) => {
          child.once('exit', () => r());
          child.kill();
        }),
    });
    for (let i = 0; i < 50; i++) {
      const up = await new Promise<boolean>((r) => {
        const c = connect(port, '127.0.0.1');
        c.once('connect', () => {
          c.destroy();
          r(true);
        });
        c.once('error', () => r(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return port;
  }

  it('sends 200 pipelined messages', async () => {
    const port = await sink(['-u', 'postfix', '-c']);
    const p = pool(port, { connections: 2 });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => p.send(envelope(i), message(i, `.x ${i}\n`))),
    );
    expect(results.filter((r) => r.status === 'sent')).toHaveLength(200);
    await p.close();
  });

  it('hard and soft RCPT failures, 421 at DATA, drop after the final dot', async () => {
    const hard = pool(await sink(['-u', 'postfix', '-f', 'RCPT', '-B', '550 5.1.1 user unknown']), {
      connections: 1,
    });
    expect(await hard.send(envelope(1), message(1))).toMatchObject({
      status: 'failed',
      code: 550,
      stage: 'RCPT',
    });
    const soft = pool(await sink(['-u', 'postfix', '-r', 'RCPT']), { connections: 1 });
    expect(await soft.send(envelope(1), message(1))).toMatchObject({ status: 'deferred', stage: 'RCPT' });
    const q421 = pool(await sink(['-u', 'postfix', '-Q', 'DATA']), { connections: 1 });
    expect(await q421.send(envelope(1), message(1))).toMatchObject({ status: 'deferred', code: 421 });
    const dropDot = pool(await sink(['-u', 'postfix', '-q', '.']), { connections: 1 });
    expect(await dropDot.send(envelope(1), message(1))).toMatchObject({ status: 'unknown', stage: 'END' });
    const dropData = pool(await sink(['-u', 'postfix', '-q', 'DATA']), { connections: 1 });
    expect(await dropData.send(envelope(1), message(1))).toMatchObject({ status: 'deferred', stage: 'CONN' });
    for (const p of [hard, soft, q421, dropDot, dropData]) await p.close();
  });
});
