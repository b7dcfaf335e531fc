import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { Deps } from '../../deps.ts';
import { dropboxToken, looksLikeDropbox, orgOfToken } from '../../mailbox/dropbox/address.ts';
import type { Resolver } from '../../mailbox/dropbox/authentication.ts';
import { dropboxInbound } from '../../mailbox/dropbox/metrics.ts';
import { deliverToDropbox } from '../../mailbox/dropbox/receive.ts';
import { parseVerp } from '../../sending/verp.ts';
import { type BounceResult, classifyBounce } from './classify.ts';
import { inboundBounces } from './metrics.ts';
import { type BounceItem, type RecordedBounces, recordBounces } from './record.ts';

// The inbound SMTP listener of the return-path domain. Bounces come to the envelope sender of each
// message, a VERP address (src/sending/verp.ts) that names the message and carries an HMAC: only
// recipients whose tag verifies are accepted, anything else is refused at RCPT and counted (a
// forged or altered token never reaches the database). A message is answered 250 only once its
// bounces are recorded; a failure answers 451, so the sending MTA retries.
// Feedback loops (Yahoo, Microsoft JMRP, …) send ARF complaints to one registered address rather
// than to the return path: `fbl@` the return-path domain is accepted too, and a complaint there
// counts only for the messages whose VERP return path, quoted in the report, verifies.
// The same listener receives the BCC dropbox (src/mailbox/dropbox/): dropbox-<token>@any domain is
// accepted when the token is an org's current one, and such mail is stored before the 250.

export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
const MAX_RECIPIENTS = 50;
const VERP_SHAPE = /^b-[0-9a-f]{32}-/i;
const VERP_IN_TEXT = /\bb-[0-9a-f]{32}-[a-z2-7]{16}@[a-z0-9.-]+/gi;
export const FEEDBACK_LOCAL_PART = 'fbl';
const isFeedback = (address: string) => address.split('@')[0].toLowerCase() === FEEDBACK_LOCAL_PART;

export interface BounceListener {
  port: number;
  host: string;
  close(): Promise<void>;
}

export interface InboundOutcome {
  result: BounceResult;
  recorded: RecordedBounces | null;
  /** Failed recipients that matched no message. */
  unmatched: number;
}

const smtpError = (code: number, message: string) =>
  Object.assign(new Error(message), { responseCode: code });

/**
 * One message received for the given VERP message ids: classified, each failed recipient matched
 * to a message and recorded. A failed recipient is the VERP message's own recipient in nearly
 * every case; when it is not (a bounce naming several recipients, one forwarded to us), the
 * original Message-ID found in the bounce names the message, within the same org only.
 */
export async function handleInbound(
  deps: Deps,
  raw: Buffer,
  rcptIds: readonly string[],
  opts: { feedback?: boolean } = {},
): Promise<InboundOutcome> {
  const result = await classifyBounce(raw);
  // A failure notice that names nobody, sent to one message's own return path, is about that
  // message's recipient (the matching below falls back to the one VERP message).
  const failed = result.bounce
    ? result.recipients
    : result.notice && rcptIds.length === 1
      ? [{ recipient: '', ...result.notice }]
      : null;
  if (!failed) return { result, recorded: null, unmatched: 0 };
  let verpIds = rcptIds;
  if (!verpIds.length && opts.feedback && failed.every((r) => r.kind === 'complaint')) {
    const secret = deps.config.secret as string;
    const quoted = raw.toString('latin1').match(VERP_IN_TEXT) ?? [];
    verpIds = [...new Set(quoted.map((a) => parseVerp(a, secret)).filter((x): x is string => x !== null))];
  }
  if (!verpIds.length) return { result, recorded: null, unmatched: failed.length };
  const verpRows = await deps.db
    .selectFrom('messages')
    .select(['id', 'org_id', 'to_address'])
    .where('id', 'in', [...verpIds])
    .execute();
  if (!verpRows.length) return { result, recorded: null, unmatched: failed.length };
  const orgs = [...new Set(verpRows.map((r) => r.org_id))];
  const originalMessageId = result.bounce ? result.originalMessageId : undefined;
  const byOriginal = originalMessageId
    ? await deps.db
        .selectFrom('messages')
        .select(['id', 'org_id', 'to_address'])
        .where('message_id_header', '=', originalMessageId)
        .where('org_id', 'in', orgs)
        .executeTakeFirst()
    : undefined;
  const at = deps.clock.now();
  const items: BounceItem[] = [];
  let unmatched = 0;
  for (const fr of failed) {
    const rcpt = fr.recipient.toLowerCase();
    const m =
      verpRows.find((r) => r.to_address.toLowerCase() === rcpt) ??
      (byOriginal && (!rcpt || byOriginal.to_address.toLowerCase() === rcpt) ? byOriginal : undefined) ??
      // A complaint often has the recipient redacted; a bounce may name the final address after a
      // forward. Either way it came to this message's own return path.
      (verpRows.length === 1 ? verpRows[0] : undefined);
    if (!m) {
      unmatched++;
      continue;
    }
    items.push({
      messageId: m.id,
      kind: fr.kind,
      status: fr.status,
      reason: fr.reason,
      at,
      source: 'dsn',
    });
  }
  const recorded = items.length ? await recordBounces(deps, items) : null;
  return { result, recorded, unmatched };
}

/** Starts the listener; port 0 picks a free port (tests). */
export async function startBounceListener(
  deps: Deps,
  /** resolver: DNS for the dropbox's SPF and DKIM checks (tests); the system's by default. */
  opts: { port: number; host: string; maxBytes?: number; resolver?: Resolver },
): Promise<BounceListener> {
  const secret = deps.config.secret;
  if (!secret)
    throw new Error('the bounce listener needs the app secret (VERP addresses are signed with it)');
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const server = new SMTPServer({
    banner: 'Parley bounce receiver',
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    size: maxBytes,
    maxClients: 100,
    socketTimeout: 60_000,
    logger: false,
    onRcptTo(address, session, cb) {
      if (looksLikeDropbox(address.address)) {
        if (session.envelope.rcptTo.length >= MAX_RECIPIENTS)
          return cb(smtpError(452, '4.5.3 Too many recipients'));
        const token = dropboxToken(address.address);
        (token ? orgOfToken(deps, token) : Promise.resolve(null)).then(
          (orgId) => {
            if (orgId) return cb();
            dropboxInbound.inc({ outcome: 'refused' });
            deps.log.warn(
              { remote: session.remoteAddress },
              'bounce listener: unknown dropbox address refused',
            );
            cb(smtpError(550, '5.1.1 No such mailbox'));
          },
          () => cb(smtpError(451, '4.3.0 Temporary failure, try again later')),
        );
        return;
      }
      const id = parseVerp(address.address, secret);
      if (!id && !isFeedback(address.address)) {
        const forged = VERP_SHAPE.test(address.address);
        inboundBounces.inc({ outcome: forged ? 'forged' : 'not_ours' });
        deps.log.warn(
          { rcpt: address.address.slice(0, 200), remote: session.remoteAddress },
          forged ? 'bounce listener: forged VERP address refused' : 'bounce listener: not a VERP address',
        );
        return cb(smtpError(550, '5.1.1 No such mailbox'));
      }
      if (session.envelope.rcptTo.length >= MAX_RECIPIENTS)
        return cb(smtpError(452, '4.5.3 Too many recipients'));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= maxBytes) chunks.push(c);
      });
      stream.on('error', (err) => cb(err));
      stream.on('end', () => {
        if (stream.sizeExceeded || size > maxBytes) {
          inboundBounces.inc({ outcome: 'too_large' });
          return cb(smtpError(552, `5.3.4 Message too big for this system (at most ${maxBytes} bytes)`));
        }
        const raw = Buffer.concat(chunks);
        const dropbox = session.envelope.rcptTo
          .map((r) => dropboxToken(r.address))
          .filter((x): x is string => x !== null);
        if (dropbox.length) {
          const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          const smtp = {
            remoteAddress: session.remoteAddress,
            hostNameAppearsAs: session.hostNameAppearsAs,
            mailFrom,
          };
          // Dropbox mail (a user's copy) and bounces (an MTA's report) never share one transaction.
          deliverToDropbox(deps, raw, dropbox, smtp, { resolver: opts.resolver }).then(
            () => cb(null, 'Ok: received by the dropbox'),
            (err: Error) => {
              dropboxInbound.inc({ outcome: 'error' });
              deps.log.error(
                { err: { message: err.message } },
                'bounce listener: could not store dropbox mail',
              );
              cb(smtpError(451, '4.3.0 Temporary failure, try again later'));
            },
          );
          return;
        }
        const ids = session.envelope.rcptTo
          .map((r) => parseVerp(r.address, secret))
          .filter((x): x is string => x !== null);
        const feedback = session.envelope.rcptTo.some((r) => isFeedback(r.address));
        handleInbound(deps, raw, [...new Set(ids)], { feedback }).then(
          (o) => {
            if (!o.result.bounce && !o.recorded) inboundBounces.inc({ outcome: 'not_bounce' });
            else {
              if (o.recorded?.recorded) inboundBounces.inc({ outcome: 'recorded' }, o.recorded.recorded);
              if (o.recorded?.duplicates) inboundBounces.inc({ outcome: 'duplicate' }, o.recorded.duplicates);
              const unmatched = o.unmatched + (o.recorded?.unknown ?? 0);
              if (unmatched) inboundBounces.inc({ outcome: 'unmatched' }, unmatched);
            }
            cb(null, 'Ok: bounce received');
          },
          (err: Error) => {
            inboundBounces.inc({ outcome: 'error' });
            deps.log.error({ err: { message: err.message } }, 'bounce listener: could not record a bounce');
            cb(smtpError(451, '4.3.0 Temporary failure, try again later'));
          },
        );
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => deps.log.error({ err: { message: err.message } }, 'bounce listener error'));
  const addr = server.server.address() as AddressInfo;
  deps.log.info({ port: addr.port, host: opts.host }, 'bounce listener started');
  return {
    port: addr.port,
    host: opts.host,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
