// A small SMTP client for pre-built messages, pipelined (RFC 2920): one round trip per message.
//
// Why our own and not nodemailer's: measured by bench/render-send.bench.ts ("SMTP step alone") on
// this 2-core machine, CPU per 15 KB pre-built message to a local smtp-server:
//   nodemailer pooled transport, sendMail({ envelope, raw })  ≈ 590–710 µs
//   nodemailer SMTPConnection.send(envelope, buffer)           ≈ 205–230 µs
//     (its DataStream alone, dot-stuffing byte by byte in JS: ≈ 96 µs for 13 KB)
//   this client                                                ≈ 65–125 µs
// The whole fast path has ≈ 0.18 ms of main-thread CPU per message with this client; with the
// pooled transport the SMTP step alone would be 3–4 times that, on a budget of ≈ 1.3 ms per message
// for everything (2 cores at 1,500/s) of which RSA signing takes ≈ 0.5. nodemailer also waits for every reply (MAIL, RCPT, DATA, end of data: four round trips)
// where PIPELINING needs one. Individual email and the delivery queue keep using nodemailer
// (transport.ts); this is for the bulk fast path only.
//
// Scope: one recipient per message; plain TCP, implicit TLS or STARTTLS; AUTH PLAIN or LOGIN;
// SMTPUTF8 when an address needs it; falls back to one command at a time when the server does not
// offer PIPELINING. Outcomes follow transport.ts: 2xx sent, 5xx failed, 4xx deferred; a connection
// lost after the whole message was written but before its reply → unknown (never re-sent), lost
// before that → deferred.
import net from 'node:net';
import tls from 'node:tls';
import { isAscii } from '../address.ts';

export type PipelineStatus = 'sent' | 'deferred' | 'failed' | 'unknown';

export interface PipelineResult {
  status: PipelineStatus;
  /** The SMTP reply code, when the server gave one. */
  code: number | null;
  /** The server's reply, or what went wrong. */
  response: string;
  /** The step the outcome came from. */
  stage: 'CONN' | 'MAIL' | 'RCPT' | 'DATA' | 'END';
}

export interface PipelineEnvelope {
  /** MAIL FROM (the VERP return path). */
  from: string;
  /** RCPT TO: exactly one. */
  to: string[];
}

export interface SmtpPipelineOptions {
  host: string;
  port: number;
  /** 'tls': implicit TLS; 'starttls': required; 'none': plain (STARTTLS not attempted). */
  security?: 'none' | 'starttls' | 'tls';
  tls?: tls.ConnectionOptions;
  auth?: { user: string; pass: string };
  /** EHLO name. */
  name?: string;
  /** Connections in the pool. */
  connections?: number;
  /** Messages per connection before it is replaced (relays cap them). */
  maxMessagesPerConnection?: number;
  connectTimeoutMs?: number;
  /** No byte from the server for this long while a reply is due: the connection is dropped. */
  socketTimeoutMs?: number;
}

const CRLF = Buffer.from('\r\n');
const DOT_END = Buffer.from('.\r\n');
const MAX_RESPONSE = 1000;
// biome-ignore lint/suspicious/noControlCharactersInRegex: these characters are what must not pass
const UNSAFE_PATH = /[\u0000\r\n<>]/;

const clip = (s: string) => (s.length > MAX_RESPONSE ? `${s.slice(0, MAX_RESPONSE - 1)}…` : s);

/**
 * The message as it goes after DATA: CRLF line ends (a bare CR or LF becomes CRLF, so "\n.\n" can
 * never end the data early: SMTP smuggling), lines starting with "." get another one (RFC 5321
 * §4.5.2), then ".\r\n". Scans with Buffer.indexOf and copies only when something must change:
 * our own messages (mime.ts) are CRLF-clean and rarely have a line starting with a dot.
 */
export function dotStuff(raw: Buffer): Buffer[] {
  let clean = true;
  for (let i = raw.indexOf(10); i !== -1 && clean; i = raw.indexOf(10, i + 1))
    if (raw[i - 1] !== 13) clean = false;
  for (let i = raw.indexOf(13); i !== -1 && clean; i = raw.indexOf(13, i + 1))
    if (raw[i + 1] !== 10) clean = false;
  let src = raw;
  if (!clean) src = Buffer.from(raw.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
  const parts: Buffer[] = [];
  let at = 0;
  if (src[0] === 0x2e) {
    parts.push(Buffer.from('.'));
  }
  for (let i = src.indexOf('\r\n.'); i !== -1; i = src.indexOf('\r\n.', i + 3)) {
    parts.push(src.subarray(at, i + 3), Buffer.from('.'));
    at = i + 3;
  }
  parts.push(at ? src.subarray(at) : src);
  if (src.length < 2 || src[src.length - 2] !== 13 || src[src.length - 1] !== 10) parts.push(CRLF);
  parts.push(DOT_END);
  return parts;
}

interface Job {
  envelope: PipelineEnvelope;
  raw: Buffer;
  resolve: (r: PipelineResult) => void;
  /** The first refusal among MAIL / RCPT / DATA. */
  refused?: PipelineResult;
}

type Expect =
  | { kind: 'MAIL' | 'RCPT' | 'DATA' | 'END'; job: Job }
  | { kind: 'RSET' }
  | { kind: 'setup'; resolve: (r: Reply) => void };

interface Reply {
  code: number;
  text: string;
  lines: string[];
}

function outcome(r: Reply, stage: PipelineResult['stage']): PipelineResult {
  const status: PipelineStatus = r.code < 400 ? 'sent' : r.code < 500 ? 'deferred' : 'failed';
  return { status, code: r.code, response: clip(r.text), stage };
}

const servername = (host: string) => (net.isIP(host) ? undefined : host);

/**
 * One SMTP connection. At most one envelope is on the wire at a time: MAIL, RCPT and DATA go out
 * together; after the 354 the body goes out followed at once by the next envelope, so the final
 * reply of one message and the envelope replies of the next come back in one round trip.
 */
class PipelineConnection {
  private socket!: net.Socket;
  private buffer = '';
  private lines: string[] = [];
  private expects: Expect[] = [];
  /** Commands not yet written, when the server lacks PIPELINING (each waits for a reply). */
  private steps: string[] = [];
  /** The job whose envelope is on the wire. */
  current: Job | null = null;
  /** The job whose body was written, waiting for its final reply. */
  ending: Job | null = null;
  /** Assigned by the pool, not yet started. */
  next: Job | null = null;
  private pipelining = false;
  private smtputf8 = false;
  private needsReset = false;
  ready = false;
  closed = false;
  sent = 0;

  constructor(
    private readonly opts: SmtpPipelineOptions,
    private readonly events: {
      idle: (c: PipelineConnection) => void;
      closed: (c: PipelineConnection) => void;
    },
  ) {}

  /** Can take another job (one waiting behind the one in progress keeps the pipe full). */
  get free(): boolean {
    return this.ready && !this.closed && !this.next && this.sent + this.inFlight < this.quota;
  }

  get inFlight(): number {
    return (this.current ? 1 : 0) + (this.ending ? 1 : 0) + (this.next ? 1 : 0);
  }

  private get quota() {
    return this.opts.maxMessagesPerConnection ?? 1000;
  }

  async open(): Promise<void> {
    const o = this.opts;
    const timeout = o.connectTimeoutMs ?? 30_000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s =
        o.security === 'tls'
          ? tls.connect({ host: o.host, port: o.port, servername: servername(o.host), ...o.tls })
          : net.connect({ host: o.host, port: o.port });
      const fail = (e: Error) => {
        s.destroy();
        reject(e);
      };
      s.setTimeout(timeout, () => fail(new Error(`connecting to ${o.host}:${o.port} timed out`)));
      s.once('error', fail);
      s.once(o.security === 'tls' ? 'secureConnect' : 'connect', () => {
        s.off('error', fail);
        s.setTimeout(0);
        resolve(s);
      });
    });
    this.attach(socket);
    try {
      await this.command(null, 220, 'greeting');
      let ext = await this.ehlo();
      if (o.security === 'starttls') {
        if (!ext.has('STARTTLS')) throw new Error('the server does not offer STARTTLS, which is required');
        await this.command('STARTTLS', 220, 'STARTTLS');
        const plain = this.socket;
        plain.removeAllListeners('data');
        plain.removeAllListeners('close');
        plain.removeAllListeners('error');
        const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
          const t = tls.connect({ socket: plain, servername: servername(o.host), ...o.tls });
          t.once('secureConnect', () => resolve(t));
          t.once('error', reject);
        });
        this.attach(secure);
        ext = await this.ehlo();
      }
      if (o.auth) await this.login(ext, o.auth);
      this.pipelining = ext.has('PIPELINING');
      this.smtputf8 = ext.has('SMTPUTF8');
      this.socket.setTimeout(o.socketTimeoutMs ?? 120_000, () => {
        if (this.expects.length) this.destroy(new Error('no reply from the server in time'));
      });
      this.ready = true;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.destroy(err);
      throw err;
    }
  }

  private attach(s: net.Socket) {
    this.socket = s;
    s.setNoDelay(true);
    s.setEncoding('latin1');
    s.on('data', (chunk: string) => this.onData(chunk));
    s.on('error', (e) => this.destroy(e));
    s.on('close', () => this.destroy(new Error('the server closed the connection')));
  }

  /** Sends a setup command (or none, for the greeting) and waits for its reply. */
  private command(line: string | null, code: number, what: string): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      this.expects.push({
        kind: 'setup',
        resolve: (r) =>
          r.code === code
            ? resolve(r)
            : reject(
                Object.assign(new Error(`${what}: ${r.text || 'no reply'}`), {
                  responseCode: r.code || null,
                }),
              ),
      });
      if (line !== null) this.socket.write(`${line}\r\n`);
    });
  }

  /** EHLO; the extensions by keyword, with their parameters. */
  private async ehlo(): Promise<Map<string, string>> {
    const r = await this.command(`EHLO ${this.opts.name ?? 'localhost'}`, 250, 'EHLO');
    const ext = new Map<string, string>();
    for (const l of r.lines.slice(1)) {
      const [k, ...rest] = l.slice(4).split(' ');
      ext.set(k.toUpperCase(), rest.join(' ').toUpperCase());
    }
    return ext;
  }

  private async login(ext: Map<string, string>, auth: { user: string; pass: string }) {
    const methods = (ext.get('AUTH') ?? '').split(' ');
    const b64 = (v: string) => Buffer.from(v, 'utf8').toString('base64');
    if (methods.includes('PLAIN'))
      await this.command(`AUTH PLAIN ${b64(`\u0000${auth.user}\u0000${auth.pass}`)}`, 235, 'AUTH');
    else if (methods.includes('LOGIN')) {
      await this.command('AUTH LOGIN', 334, 'AUTH');
      await this.command(b64(auth.user), 334, 'AUTH');
      await this.command(b64(auth.pass), 235, 'AUTH');
    } else throw new Error('the server offers neither AUTH PLAIN nor AUTH LOGIN');
  }

  private onData(chunk: string) {
    this.buffer += chunk;
    let nl = this.buffer.indexOf('\n');
    while (nl !== -1) {
      const line = this.buffer.slice(0, this.buffer[nl - 1] === '\r' ? nl - 1 : nl);
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      // "250-…" continues a multi-line reply; "250 …" or a bare "250" ends it.
      if (line[3] !== '-') {
        const lines = this.lines;
        this.lines = [];
        const code = Number(line.slice(0, 3));
        this.onReply({ code: Number.isInteger(code) ? code : 0, text: lines.join('\n'), lines });
        if (this.closed) return;
      }
      nl = this.buffer.indexOf('\n');
    }
  }

  private onReply(r: Reply) {
    const e = this.expects.shift();
    if (!e) return this.destroy(new Error(`unexpected reply from the server: ${clip(r.text)}`));
    if (e.kind === 'setup') return e.resolve(r);
    const step = this.steps.shift();
    if (step) this.socket.write(step);
    switch (e.kind) {
      case 'RSET':
        return;
      case 'MAIL':
      case 'RCPT':
        if (r.code >= 300) e.job.refused ??= outcome(r, e.kind);
        return;
      case 'DATA': {
        const job = e.job;
        this.current = null;
        if (r.code === 354 && !job.refused) {
          const parts = dotStuff(job.raw);
          for (const part of parts) this.socket.write(part);
          this.ending = job;
          this.expects.push({ kind: 'END', job });
          this.sent++;
          if (this.pipelining) this.startNext();
          return;
        }
        this.needsReset = true;
        job.resolve(job.refused ?? outcome(r, 'DATA'));
        // DATA accepted although the envelope was refused (a confused server): any way to end the
        // data would deliver something, so drop the connection; the server discards the message.
        if (r.code === 354)
          return this.destroy(new Error('the server accepted DATA after refusing the envelope'));
        return this.startNext();
      }
      case 'END': {
        this.ending = null;
        e.job.resolve(outcome(r, 'END'));
        if (!this.pipelining) this.startNext();
        if (!this.next && !this.current) {
          if (this.sent >= this.quota) return this.quit(); // the pool opens a fresh one
          this.events.idle(this);
        }
        return;
      }
    }
  }

  /** Takes a job from the pool; starts it now if the wire is free. */
  assign(job: Job) {
    this.next = job;
    this.startNext();
  }

  private startNext() {
    if (this.closed || this.current || !this.next) return;
    if (!this.pipelining && this.ending) return;
    const job = this.next;
    this.next = null;
    const { from, to } = job.envelope;
    const utf8 = !isAscii(from) || !isAscii(to[0]);
    if (utf8 && !this.smtputf8) {
      job.resolve({
        status: 'failed',
        code: null,
        response: 'an address needs SMTPUTF8, which the server does not offer',
        stage: 'MAIL',
      });
      this.events.idle(this);
      return;
    }
    this.current = job;
    const commands: string[] = [];
    if (this.needsReset) {
      commands.push('RSET\r\n');
      this.expects.push({ kind: 'RSET' });
      this.needsReset = false;
    }
    commands.push(`MAIL FROM:<${from}>${utf8 ? ' SMTPUTF8' : ''}\r\n`, `RCPT TO:<${to[0]}>\r\n`, 'DATA\r\n');
    this.expects.push({ kind: 'MAIL', job }, { kind: 'RCPT', job }, { kind: 'DATA', job });
    if (this.pipelining) this.socket.write(commands.join(''));
    else {
      this.socket.write(commands[0]);
      this.steps.push(...commands.slice(1));
    }
    this.events.idle(this); // room for the next job behind this one
  }

  /** Ends the session politely once nothing is in flight. */
  quit() {
    if (this.closed) return;
    this.closed = true;
    if (this.ready && !this.socket.destroyed) this.socket.end('QUIT\r\n');
    else this.socket?.destroy();
    this.events.closed(this);
  }

  /** Resolves once the socket is closed: the server no longer counts this connection. */
  gone(): Promise<void> {
    const s = this.socket;
    if (!s || s.closed) return Promise.resolve();
    return new Promise((resolve) => s.once('close', () => resolve()));
  }

  destroy(err: Error) {
    if (this.closed && !this.ending && !this.current && !this.next) {
      this.socket?.destroy();
      return;
    }
    const wasClosed = this.closed;
    this.closed = true;
    this.socket?.destroy();
    const reason = err.message;
    for (const e of this.expects.splice(0))
      if (e.kind === 'setup') e.resolve({ code: 0, text: reason, lines: [] });
    this.steps = [];
    if (this.ending) {
      // Written whole, reply lost: it may have been delivered. Never re-sent.
      this.ending.resolve({
        status: 'unknown',
        code: null,
        response: clip(
          `${reason} (after the whole message was sent, before the reply: it may have been delivered)`,
        ),
        stage: 'END',
      });
      this.ending = null;
    }
    if (this.current) {
      this.current.resolve(
        this.current.refused ?? { status: 'deferred', code: null, response: clip(reason), stage: 'CONN' },
      );
      this.current = null;
    }
    // A connection that never became ready is the opener's to report (createSmtpPipelinePool).
    if (!wasClosed && this.ready) this.events.closed(this);
  }

  /** The job assigned but not started, handed back when the connection goes away. */
  takeBack(): Job | null {
    const j = this.next;
    this.next = null;
    return j;
  }
}

export interface SmtpPipelinePool {
  send(envelope: PipelineEnvelope, raw: Buffer): Promise<PipelineResult>;
  /** Waits for the messages in flight, then ends every session with QUIT. */
  close(): Promise<void>;
}

/**
 * Up to `connections` pipelined connections, opened on demand. Messages not yet started on a
 * connection that goes away are sent on another; when no connection can be opened they come back
 * deferred with the reason (the relay, not the message, is the problem).
 */
export function createSmtpPipelinePool(opts: SmtpPipelineOptions): SmtpPipelinePool {
  const max = Math.max(1, opts.connections ?? 4);
  const conns = new Set<PipelineConnection>();
  let opening = 0;
  const waiting: Job[] = [];
  let inFlight = 0;
  let drained: (() => void) | null = null;
  let closing = false;
  let closed: Promise<void> | undefined;

  const events = {
    idle: () => dispatch(),
    closed: (c: PipelineConnection) => {
      conns.delete(c);
      const j = c.takeBack();
      if (j) waiting.unshift(j);
      dispatch();
    },
  };

  function dispatch() {
    while (waiting.length) {
      let best: PipelineConnection | null = null;
      for (const c of conns) if (c.free && (!best || c.inFlight < best.inFlight)) best = c;
      // Open another connection while every open one already has work (closing too: what was
      // accepted before the close is still sent).
      if ((!best || best.inFlight > 0) && conns.size + opening < max) openOne();
      if (!best) return;
      best.assign(waiting.shift()!);
    }
  }

  function openOne() {
    opening++;
    const c = new PipelineConnection(opts, events);
    c.open().then(
      () => {
        opening--;
        if (closing && waiting.length === 0) return c.quit();
        conns.add(c);
        dispatch();
      },
      (e: Error) => {
        opening--;
        // Nothing to send them on: defer what waits, unless another connection is alive or coming.
        if (conns.size === 0 && opening === 0)
          for (const j of waiting.splice(0))
            j.resolve({
              status: 'deferred',
              // A greeting or AUTH refusal keeps the server's code: the relay, not the message, failed.
              code: (e as Error & { responseCode?: number | null }).responseCode ?? null,
              response: clip(`SMTP connection failed: ${e.message}`),
              stage: 'CONN',
            });
      },
    );
  }

  return {
    send(envelope, raw) {
      if (closing) return Promise.reject(new Error('the SMTP pool is closed'));
      if (envelope.to.length !== 1) return Promise.reject(new Error('one recipient per message'));
      // The addresses go into MAIL FROM:<…> / RCPT TO:<…> as they are: no line breaks, no brackets.
      if (UNSAFE_PATH.test(envelope.from) || UNSAFE_PATH.test(envelope.to[0]))
        return Promise.resolve<PipelineResult>({
          status: 'failed',
          code: null,
          response: 'the envelope address contains a line break, a NUL or an angle bracket',
          stage: 'MAIL',
        });
      inFlight++;
      return new Promise<PipelineResult>((resolve) => {
        waiting.push({
          envelope,
          raw,
          resolve: (r) => {
            inFlight--;
            resolve(r);
            if (inFlight === 0) drained?.();
          },
        });
        dispatch();
      });
    },
    close() {
      closed ??= closeNow();
      return closed;
    },
  };

  async function closeNow(): Promise<void> {
    closing = true;
    if (inFlight > 0) await new Promise<void>((r) => (drained = r));
    const quitting = [...conns];
    for (const c of quitting) c.quit();
    // Resolved once the relay has seen them go, so that a pool that replaces this one never has
    // its connections open beside these (relay-share.ts); a relay slow to answer QUIT: 2 s at most.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(quitting.map((c) => c.gone())),
      new Promise<void>((r) => {
        timer = setTimeout(r, 2_000);
      }),
    ]);
    clearTimeout(timer);
  }
}
