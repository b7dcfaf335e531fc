// Opening a connection to a user's mailbox from its settings, and the "test connection" check.
import { ImapFlow } from 'imapflow';
import { type SyncErrorCode, toSyncError } from './errors.ts';
import { Pop3Client } from './pop3-client.ts';

export interface MailboxSettings {
  protocol: 'imap' | 'pop3';
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'none';
  username: string;
  auth: 'password' | 'oauth2';
  /** The password or the OAuth2 bearer token, decrypted. */
  secret: string;
}

export const CONNECT_TIMEOUT_MS = 20_000;

/** A connected, authenticated IMAP client (the caller logs out). Throws a SyncError. */
export async function openImap(s: MailboxSettings, opts: { timeoutMs?: number } = {}): Promise<ImapFlow> {
  const timeout = opts.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const client = new ImapFlow({
    host: s.host,
    port: s.port,
    secure: s.security === 'tls',
    // STARTTLS is required when chosen (never fall back to cleartext), never tried with 'none'.
    doSTARTTLS: s.security === 'starttls' ? true : s.security === 'none' ? false : undefined,
    auth:
      s.auth === 'oauth2'
        ? { user: s.username, accessToken: s.secret }
        : { user: s.username, pass: s.secret },
    logger: false,
    disableAutoIdle: true,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: 5 * 60_000,
    // RFC 2177: servers may drop a client idle for 30 minutes; IDLE is re-issued well before.
    maxIdleTime: 20 * 60_000,
  });
  // A dropped connection is reported through the pending command; without a listener the event would throw.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    client.close();
    throw toSyncError(err);
  }
  return client;
}

export async function openPop3(s: MailboxSettings, opts: { timeoutMs?: number } = {}): Promise<Pop3Client> {
  try {
    return await Pop3Client.connect(s, { timeoutMs: opts.timeoutMs ?? CONNECT_TIMEOUT_MS });
  } catch (err) {
    throw toSyncError(err);
  }
}

export type TestResult =
  | { ok: true }
  | { ok: false; code: SyncErrorCode; message: string; detail: string | null };

/** Connects and logs in, and answers why not when it cannot. */
export async function testConnection(
  s: MailboxSettings,
  opts: { timeoutMs?: number } = {},
): Promise<TestResult> {
  try {
    if (s.protocol === 'imap') {
      const c = await openImap(s, opts);
      await c.logout().catch(() => c.close());
    } else {
      const c = await openPop3(s, opts);
      await c.quit();
    }
    return { ok: true };
  } catch (err) {
    const e = toSyncError(err);
    return { ok: false, code: e.code, message: e.message, detail: e.detail };
  }
}

/** secret_enc is bound to its account: a ciphertext copied to another row does not decrypt. */
export const secretContext = (accountId: string) => `mailbox_accounts.secret:${accountId}`;
