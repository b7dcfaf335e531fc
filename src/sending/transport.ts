// SMTP transports: one pooled nodemailer transport per relay, reused by every delivery in the
// process, sending pre-built raw messages. Also the one place that turns an SMTP outcome into a
// message status.
//
// "Before DATA" or "after DATA"? nodemailer reports a dropped connection the same way wherever it
// happened (code ECONNECTION/ESOCKET/ETIMEDOUT, command "CONN", no responseCode), so its error alone
// cannot tell a message that never left from one whose final "." was sent and whose reply was lost.
// We watch the message stream instead: a stream plugin puts a pass-through at the end of the
// message pipeline, which the SMTP connection only starts reading after the server's 354, and whose
// 'end' means the whole message (and so the terminating "." right after it) was handed to the
// socket. Verified against smtp-sink (test/delivery.test.ts):
//   -q DATA (drop after the DATA command, no 354)  → stream never read    → deferred, retried
//   -q .    (drop after the final ".", no reply)   → stream fully read    → unknown, never re-sent
//   -Q DATA / -Q . (421 and disconnect)            → a reply: 4xx          → deferred
// Erring on the safe side: a connection lost in the instant between the stream's end and the dot
// reaching the socket is also "unknown".
import { PassThrough } from 'node:stream';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type { Deps } from '../deps.ts';
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
  send(envelope: Envelope, raw: Buffer): Promise<SendOutcome>;
  /** Idle connections close at once, busy ones after their message. */
  close(): void;
}

const MAX_RESPONSE = 1000;

// Timeouts bound how long a claimed message can stay in 'sending' (see delivery.ts STUCK_AFTER_MS).
const CONNECTION_TIMEOUT_MS = 30_000;
const GREETING_TIMEOUT_MS = 30_000;
const SOCKET_TIMEOUT_MS = 120_000;

interface Probe {
  dataSent: boolean;
}

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

function smtpOptions(deps: Pick<Deps, 'config'>, relay: RelaySettings): SMTPTransport.Options {
  const password = relayPassword(deps, relay);
  return {
    host: relay.host,
    port: relay.port,
    secure: relay.security === 'tls',
    requireTLS: relay.security === 'starttls',
    ignoreTLS: relay.security === 'none',
    auth: relay.username ? { user: relay.username, pass: password ?? '' } : undefined,
    name: relay.sendingDomain ?? undefined,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
    debug: false,
  };
}

/** Registers the stream probe that tells whether a message was sent whole (see the file comment). */
function withProbe<T extends Transporter>(t: T): T {
  t.use('stream', (mail, done) => {
    const probe = (mail.data as { probe?: Probe }).probe;
    if (probe)
      mail.message.processFunc((input) => {
        const out = new PassThrough();
        out.once('end', () => {
          probe.dataSent = true;
        });
        input.pipe(out);
        return out;
      });
    done();
  });
  return t;
}

async function sendWith(t: Transporter, envelope: Envelope, raw: Buffer): Promise<SendOutcome> {
  const probe: Probe = { dataSent: false };
  try {
    // raw: nodemailer sends the bytes as they are (no headers added), dot-stuffed on the wire.
    const info = await t.sendMail({
      envelope: { from: envelope.from, to: [envelope.to] },
      raw,
      probe,
    } as never);
    const response = String((info as { response?: string }).response ?? '250 OK');
    const code = REPLY_CODE.exec(response);
    return { status: 'sent', code: code ? Number(code[1]) : 250, response: clip(response) };
  } catch (err) {
    return classifySmtpError(err, probe.dataSent);
  }
}

interface Entry {
  transport: RelayTransport;
}

const caches = new WeakMap<object, Map<string, Entry>>();

function cacheOf(deps: Pick<Deps, 'db'>) {
  let c = caches.get(deps.db);
  if (!c) {
    c = new Map();
    caches.set(deps.db, c);
  }
  return c;
}

function buildRelayTransport(deps: Pick<Deps, 'config'>, relay: RelaySettings): RelayTransport {
  const options: SMTPPool.Options = {
    ...(smtpOptions(deps, relay) as SMTPPool.Options),
    pool: true,
    maxConnections: relay.maxConnections,
    maxMessages: 1000, // reconnect now and then: relays cap messages per connection
  };
  const t = withProbe(nodemailer.createTransport(options));
  const limiter = new DeliveryLimiter({
    perSecond: relay.maxPerSecond,
    maxConnections: relay.maxConnections,
    domains: relay.domainLimits,
  });
  return {
    orgId: relay.orgId,
    version: relay.version,
    limiter,
    send: (envelope, raw) => sendWith(t, envelope, raw),
    close: () => t.close(),
  };
}

/**
 * The org's pooled transport, built on first use and reused; rebuilt (the old one closed after its
 * messages in flight) when the relay settings changed. Throws when the password cannot be decrypted.
 */
export function relayTransport(deps: Pick<Deps, 'db' | 'config'>, relay: RelaySettings): RelayTransport {
  const cache = cacheOf(deps);
  const cached = cache.get(relay.orgId);
  if (cached && cached.transport.version === relay.version) return cached.transport;
  const transport = buildRelayTransport(deps, relay);
  cached?.transport.close();
  cache.set(relay.orgId, { transport });
  return transport;
}

/** Closes the transport of an org whose relay was removed, if one is cached. */
export function dropRelayTransport(deps: Pick<Deps, 'db'>, orgId: string): void {
  const cache = cacheOf(deps);
  cache.get(orgId)?.transport.close();
  cache.delete(orgId);
}

/** Closes every cached transport (worker shutdown). */
export function closeRelayTransports(deps: Pick<Deps, 'db'>): void {
  const cache = cacheOf(deps);
  for (const e of cache.values()) e.transport.close();
  cache.clear();
}

/**
 * One message over a fresh, unpooled connection, for "send test email": the result reflects the
 * settings as saved now, and every error comes back as it happened.
 */
export async function sendOnce(
  deps: Pick<Deps, 'config'>,
  relay: RelaySettings,
  envelope: Envelope,
  raw: Buffer,
): Promise<SendOutcome> {
  const t = withProbe(
    nodemailer.createTransport({
      ...smtpOptions(deps, relay),
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 30_000,
    }),
  );
  try {
    return await sendWith(t, envelope, raw);
  } finally {
    t.close();
  }
}
