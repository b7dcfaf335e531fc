// SMTP transports: one pool of connections per relay, reused by every delivery in the process,
// sending pre-built raw messages. Also the one place that turns an SMTP outcome into a message
// status.
//
// The SMTP protocol is nodemailer's (SMTPConnection: EHLO, STARTTLS, AUTH, PIPELINING, dot-stuffing,
// SMTPUTF8); the pool around it is ours. Measured on this machine against smtp-sink, 9 KB messages,
// 10 connections: nodemailer's pooled transport (`sendMail({envelope, raw})`) costs 0.40 ms of CPU
// per message (2,700/s), because every raw message still goes through MailComposer, a MimeNode
// stream pipeline, a generated Message-ID and boundary; SMTPConnection.send with the same bytes
// costs 0.17 ms (5,500/s). Delivery is the hot path of every send, so the pool is ours.
//
// "Before DATA" or "after DATA"? nodemailer reports a dropped connection the same way wherever it
// happened (code ECONNECTION/ESOCKET/ETIMEDOUT, command "CONN", no responseCode), so its error alone
// cannot tell a message that never left from one whose final "." was sent and whose reply was lost.
// We hand SMTPConnection the message as a stream that it only starts reading after the server's
// 354, and whose 'end' means the whole message (and so the terminating "." written right after
// it) went to the socket. Verified against smtp-sink (test/delivery.test.ts):
//   -q DATA (drop after the DATA command, no 354)  → stream never read    → deferred, retried
//   -q .    (drop after the final ".", no reply)   → stream fully read    → unknown, never re-sent
//   -Q DATA / -Q . (421 and disconnect)            → a reply: 4xx          → deferred
// Erring on the safe side: a connection lost in the instant between the stream's end and the dot
// reaching the socket is also "unknown".
import { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Deps } from '../deps.ts';
import { createSmtpPipelinePool } from './fast/smtp-pipeline.ts';
import { type RelaySettings, relayPassword } from './relays.ts';
import { DeliveryLimiter } from './throttle.ts';

export type SendStatus = 'sent' | 'deferred' | 'failed' | 'unknown';

export interface SendOutcome {
  status: SendStatus;
  /** The SMTP reply code, when the server gave one. */
  code: number | null;
  /** The server's reply, or what went wrong when there was none. */
  response: string;
  /** For failures: nodemailer's error code (EENVELOPE, ECONNECTION, EAUTH…) and the SMTP step. */
  error?: { code?: string; command?: string };
}

export interface Envelope {
  /** The VERP return path (MAIL FROM). */
  from: string;
  to: string;
}

export interface RelayTransport {
  readonly orgId: string;
  readonly version: string;
  readonly limiter: DeliveryLimiter;
  /**
   * Resolves once the connections of the transports this one replaced are closed: only then may it
   * open its own, so that the relay never sees both (a new share of its limits is never on top of
   * the old one).
   */
  readonly opened: Promise<void>;
  /** Never rejects: a closed transport answers deferred (check `closed` first to avoid that). */
  send(envelope: Envelope, raw: Buffer): Promise<SendOutcome>;
  /** Idle connections close at once, busy ones after their message; resolves once all are closed. */
  close(): Promise<void>;
  /** Closed: replaced by a newer transport (new settings, or a new share of the relay's limits). */
  readonly closed: boolean;
}

const MAX_RESPONSE = 1000;

// Timeouts bound how long a claimed message can stay in 'sending' (see delivery.ts STUCK_AFTER_MS).
const CONNECTION_TIMEOUT_MS = 30_000;
const GREETING_TIMEOUT_MS = 30_000;
const SOCKET_TIMEOUT_MS = 120_000;
/** Messages per connection before it is replaced (relays cap them; some leak per session). */
const MAX_MESSAGES_PER_CONNECTION = 1000;
/** An idle connection is closed after this long (RFC 5321 servers wait at least 5 minutes). */
const IDLE_CLOSE_MS = 30_000;

type SmtpError = Error & { code?: string; command?: string; responseCode?: number; response?: string };

const REPLY_CODE = /^([2-5]\d\d)[ -]/;

function clip(s: string): string {
  return s.length > MAX_RESPONSE ? `${s.slice(0, MAX_RESPONSE - 1)}…` : s;
}

/**
 * The status a failed send leaves its message in. A reply decides when there is one: 5xx to MAIL
 * FROM, RCPT TO, DATA or the final "." fails the message, 4xx defers it. No reply: unknown when the
 * whole message had been sent, otherwise deferred. Problems of the relay itself (cannot connect,
 * TLS, login refused, a 5xx greeting) defer too: the message is fine, the relay is not (yet).
 */
export function classifySmtpError(err: unknown, dataSent: boolean): SendOutcome {
  const e = (err instanceof Error ? err : new Error(String(err))) as SmtpError;
  const code = typeof e.responseCode === 'number' ? e.responseCode : null;
  const error = { code: e.code, command: e.command };
  const messageStep = e.code === 'EENVELOPE' || e.code === 'EMESSAGE';
  const response = clip(e.response?.trim() || `${e.code ?? 'Error'}: ${e.message}`);
  if (code !== null && messageStep) {
    if (code >= 500) return { status: 'failed', code, response, error };
    return { status: 'deferred', code, response, error };
  }
  if (code === null && dataSent)
    return {
      status: 'unknown',
      code: null,
      response: clip(
        `${response} (after the whole message was sent, before the server's reply: it may have been delivered)`,
      ),
      error,
    };
  return { status: 'deferred', code, response, error };
}

/**
 * Runs one SMTPConnection operation to its end. Depending on where it fails, nodemailer reports a
 * failure through the callback, an 'error' event, or only the 'end' of the connection (connect
 * never calls back on a refused connection, for one): whichever comes first settles it.
 */
function step(c: SMTPConnection, run: (done: (e?: Error | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (e?: Error | null) => {
      if (settled) return;
      settled = true;
      c.off('error', onError);
      c.off('end', onEnd);
      if (e) reject(e);
      else resolve();
    };
    const onError = (e: Error) => finish(e);
    const onEnd = () =>
      finish(
        Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION', command: 'CONN' }),
      );
    c.once('error', onError);
    c.once('end', onEnd);
    run(finish);
  });
}

function connectionOptions(relay: RelaySettings): SMTPConnection.Options {
  return {
    host: relay.host,
    port: relay.port,
    secure: relay.security === 'tls',
    requireTLS: relay.security === 'starttls',
    ignoreTLS: relay.security === 'none',
    name: relay.sendingDomain ?? undefined,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
    debug: false,
  };
}

interface Conn {
  c: SMTPConnection;
  messages: number;
  alive: boolean;
  forgotten: boolean;
  idleTimer: NodeJS.Timeout | null;
}

interface Waiter {
  resolve: (c: Conn) => void;
  reject: (e: Error) => void;
}

/** Up to `max` open SMTP connections to one relay, handed out one message at a time. */
export class ConnectionPool {
  private readonly idle: Conn[] = [];
  private readonly waiters: Waiter[] = [];
  private open = 0;
  private closed = false;

  constructor(
    private readonly options: SMTPConnection.Options,
    private readonly auth: { user: string; pass: string } | undefined,
    private readonly max: number,
    private readonly maxMessages = MAX_MESSAGES_PER_CONNECTION,
    private readonly idleMs = IDLE_CLOSE_MS,
  ) {}

  /** Connections open now (busy or idle). */
  get size(): number {
    return this.open;
  }

  async send(envelope: Envelope, raw: Buffer): Promise<SendOutcome> {
    for (let attempt = 0; ; attempt++) {
      let conn: Conn;
      try {
        conn = await this.acquire();
      } catch (e) {
        return classifySmtpError(e, false);
      }
      const reused = conn.messages > 0;
      const probe = { read: false, ended: false };
      // Read by SMTPConnection only after the 354 reply; 'end' once all of it went to the socket.
      const stream = new Readable({
        read() {
          probe.read = true;
          this.push(raw);
          this.push(null);
        },
      });
      stream.once('end', () => {
        probe.ended = true;
      });
      let info: { response?: string } | undefined;
      const err = (await step(conn.c, (done) =>
        conn.c.send({ from: envelope.from, to: [envelope.to] }, stream, (e, i) => {
          info = i as { response?: string };
          done(e);
        }),
      ).then(
        () => null,
        (e) => e,
      )) as SmtpError | null;
      if (!err) {
        conn.messages++;
        this.release(conn);
        const response = String(info?.response ?? '250 OK');
        const code = REPLY_CODE.exec(response);
        return { status: 'sent', code: code ? Number(code[1]) : 250, response: clip(response) };
      }
      // A kept connection the server had closed meanwhile: not a byte of this message left, so it
      // goes again, once, over a new connection (what nodemailer's own pool does too).
      if (reused && !probe.read && err.responseCode == null && attempt === 0) {
        this.discard(conn);
        continue;
      }
      // The server refused this message but the session is fine: reset it and keep it.
      if ((err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421 && conn.alive) {
        step(conn.c, (done) => conn.c.reset(done)).then(
          () => this.release(conn),
          () => this.discard(conn),
        );
      } else this.discard(conn);
      return classifySmtpError(err, probe.ended);
    }
  }

  /** Idle connections quit now; busy ones when their message is done; waiters fail. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) this.discard(c);
    for (const w of this.waiters.splice(0))
      w.reject(Object.assign(new Error('the relay connection pool was closed'), { code: 'ECONNECTION' }));
  }

  private acquire(): Promise<Conn> {
    if (this.closed)
      return Promise.reject(
        Object.assign(new Error('the relay connection pool was closed'), { code: 'ECONNECTION' }),
      );
    const conn = this.idle.pop();
    if (conn) {
      if (conn.idleTimer) clearTimeout(conn.idleTimer);
      conn.idleTimer = null;
      return Promise.resolve(conn);
    }
    if (this.open < this.max) return this.connect();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private async connect(): Promise<Conn> {
    this.open++;
    const c = new SMTPConnection(this.options);
    const conn: Conn = { c, messages: 0, alive: true, forgotten: false, idleTimer: null };
    // Errors also reach the callback of whatever was in progress; the event must have a listener.
    c.on('error', () => {
      conn.alive = false;
    });
    c.once('end', () => {
      conn.alive = false;
      this.forget(conn);
    });
    try {
      await step(c, (done) => c.connect(done));
      const auth = this.auth;
      if (auth) await step(c, (done) => c.login(auth, done));
      return conn;
    } catch (e) {
      conn.alive = false;
      c.close();
      this.forget(conn);
      throw e;
    }
  }

  private release(conn: Conn) {
    if (!conn.alive || this.closed || conn.messages >= this.maxMessages) {
      this.discard(conn);
      return;
    }
    const w = this.waiters.shift();
    if (w) {
      w.resolve(conn);
      return;
    }
    conn.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      this.discard(conn);
    }, this.idleMs);
    conn.idleTimer.unref();
    this.idle.push(conn);
  }

  private discard(conn: Conn) {
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    conn.idleTimer = null;
    if (conn.alive) {
      conn.alive = false;
      conn.c.quit(); // closes after the server's reply to QUIT
    } else conn.c.close();
    this.forget(conn);
  }

  /** The connection no longer counts against max; a waiter gets a new one. */
  private forget(conn: Conn) {
    if (conn.forgotten) return;
    conn.forgotten = true;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.open--;
    const w = this.waiters.shift();
    if (w && !this.closed) this.connect().then(w.resolve, w.reject);
    else if (w)
      w.reject(Object.assign(new Error('the relay connection pool was closed'), { code: 'ECONNECTION' }));
  }
}

interface TransportCache {
  live: Map<string, RelayTransport>;
  /** By org: the closing of the transports replaced, which the next one waits for before sending. */
  closing: Map<string, Promise<void>>;
}
const caches = new WeakMap<object, TransportCache>();

function cacheOf(deps: Pick<Deps, 'db'>): TransportCache {
  let c = caches.get(deps.db);
  if (!c) {
    c = { live: new Map(), closing: new Map() };
    caches.set(deps.db, c);
  }
  return c;
}

/** Closes the org's transport, if there is one; its successor sends once this is done. */
function retire(cache: TransportCache, orgId: string): void {
  const t = cache.live.get(orgId);
  if (!t) return;
  cache.live.delete(orgId);
  const before = cache.closing.get(orgId);
  const done: Promise<void> = Promise.all([before, t.close().catch(() => {})]).then(() => {
    if (cache.closing.get(orgId) === done) cache.closing.delete(orgId);
  });
  cache.closing.set(orgId, done);
}

/**
 * The org's pooled transport, built on first use and reused; rebuilt (the old one closed after its
 * messages in flight) when the relay settings changed. Throws when the password cannot be decrypted.
 */
export function relayTransport(deps: Pick<Deps, 'db' | 'config'>, relay: RelaySettings): RelayTransport {
  const cache = cacheOf(deps);
  const cached = cache.live.get(relay.orgId);
  if (cached && cached.version === relay.version) return cached;
  retire(cache, relay.orgId);
  const opened = cache.closing.get(relay.orgId) ?? Promise.resolve();
  // Bulk delivery goes through the pipelined client (fast/smtp-pipeline.ts): one round trip and
  // ~0.1 ms of CPU per message against ~0.2 ms for SMTPConnection (measured by bench:render-send);
  // its outcomes follow the same rules (5xx failed, 4xx or no connection deferred, silence after
  // the whole message unknown). "Send test email" keeps nodemailer (sendOnce below).
  const password = relayPassword(deps, relay);
  const pool = createSmtpPipelinePool({
    host: relay.host,
    port: relay.port,
    security: relay.security,
    auth: relay.username ? { user: relay.username, pass: password ?? '' } : undefined,
    name: relay.sendingDomain ?? undefined,
    connections: relay.maxConnections,
    maxMessagesPerConnection: MAX_MESSAGES_PER_CONNECTION,
    connectTimeoutMs: CONNECTION_TIMEOUT_MS,
    socketTimeoutMs: SOCKET_TIMEOUT_MS,
  });
  let closed = false;
  const transport: RelayTransport = {
    orgId: relay.orgId,
    version: relay.version,
    limiter: new DeliveryLimiter({
      perSecond: relay.maxPerSecond,
      // Each connection carries the message being answered and the next one behind it.
      maxConnections: relay.maxConnections * 2,
      domains: relay.domainLimits,
    }),
    opened,
    send: async (envelope, raw) => {
      const r = await pool.send({ from: envelope.from, to: [envelope.to] }, raw).catch(
        (e: Error) =>
          // the pool closed: nothing of this message was written (sendThroughRelay checks first)
          ({ status: 'deferred', code: null, response: e.message, stage: 'CONN' }) as const,
      );
      return {
        status: r.status,
        code: r.code,
        response: r.response,
        ...(r.status === 'sent' ? {} : { error: { command: r.stage } }),
      };
    },
    close: () => {
      closed = true;
      return pool.close();
    },
    get closed() {
      return closed;
    },
  };
  cache.live.set(relay.orgId, transport);
  return transport;
}

/** The transports in use (one per org with a relay). */
export function liveRelayTransports(deps: Pick<Deps, 'db'>): Iterable<RelayTransport> {
  return cacheOf(deps).live.values();
}

/** Closes the transport of an org whose relay changed or was removed, if one is cached. */
export function dropRelayTransport(deps: Pick<Deps, 'db'>, orgId: string): void {
  retire(cacheOf(deps), orgId);
}

/**
 * Closes every cached transport (worker shutdown, or a new split of the relays' limits between the
 * workers); resolves once their connections are closed.
 */
export async function closeRelayTransports(deps: Pick<Deps, 'db'>): Promise<void> {
  const cache = cacheOf(deps);
  for (const orgId of [...cache.live.keys()]) retire(cache, orgId);
  await Promise.all(cache.closing.values());
}

/**
 * One message over a fresh connection, for "send test email": the result reflects the settings as
 * saved now, and every error comes back as it happened.
 */
export async function sendOnce(
  deps: Pick<Deps, 'config'>,
  relay: RelaySettings,
  envelope: Envelope,
  raw: Buffer,
): Promise<SendOutcome> {
  const pool = new ConnectionPool(
    {
      ...connectionOptions(relay),
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 30_000,
    },
    relay.username ? { user: relay.username, pass: relayPassword(deps, relay) ?? '' } : undefined,
    1,
  );
  try {
    return await pool.send(envelope, raw);
  } finally {
    pool.close();
  }
}
