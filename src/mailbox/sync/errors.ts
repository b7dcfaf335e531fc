// Provider failures as coded errors the user can act on. Only 'auth' pauses the account (the
// password or token must be entered again); every other code is retried with a backoff.

export const SYNC_ERROR_CODES = ['auth', 'tls', 'network', 'not_found', 'timeout', 'protocol'] as const;
export type SyncErrorCode = (typeof SYNC_ERROR_CODES)[number];

const MESSAGES: Record<SyncErrorCode, string> = {
  auth: 'The server refused the user name, password or token',
  tls: 'A secure (TLS) connection could not be made: check the security setting and port, or the server certificate',
  network: 'The server could not be reached or closed the connection',
  not_found: 'No server by that name was found (DNS)',
  timeout: 'The server did not answer in time',
  protocol: 'The server answered something unexpected',
};

export class SyncError extends Error {
  constructor(
    readonly code: SyncErrorCode,
    message: string = MESSAGES[code],
    readonly detail: string | null = null,
  ) {
    super(message);
    this.name = 'SyncError';
  }

  /** Retry later (with backoff); false means pause the account until the user acts. */
  get temporary(): boolean {
    return this.code !== 'auth';
  }
}

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  authenticationFailed?: boolean;
  tlsFailed?: boolean;
  serverResponseCode?: unknown;
  responseText?: unknown;
  _err?: unknown;
  cause?: unknown;
}

const TLS_CODES =
  /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET|VERIFY)_|ClosedAfterConnectTLS|STARTTLS_INJECTION|HOSTNAME_MISMATCH|EPROTO)/;
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EADDRNOTAVAIL',
  'NoConnection',
  'EConnectionClosed',
  'ClosedAfterConnectText',
]);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_NONAME', 'EAI_NODATA']);
const TIMEOUT_CODES = new Set([
  'ETIMEDOUT',
  'ETIMEOUT',
  'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT',
  'UPGRADE_TIMEOUT',
  'ESOCKETTIMEDOUT',
]);

/** Any error from imapflow, the POP3 client, sockets or TLS as a SyncError. */
export function toSyncError(err: unknown): SyncError {
  if (err instanceof SyncError) return err;
  const e = (err ?? {}) as ErrorLike;
  const inner = (e._err ?? e.cause ?? {}) as ErrorLike;
  const code = String(e.code ?? inner.code ?? '');
  const text = String(e.responseText ?? e.message ?? '');
  const detail = text.slice(0, 300) || null;
  if (e.authenticationFailed || e.serverResponseCode === 'AUTHENTICATIONFAILED' || code === 'AUTH')
    return new SyncError('auth', undefined, detail);
  if (e.tlsFailed || TLS_CODES.test(code) || /certificate|ssl|tls/i.test(String(inner.message ?? '')))
    return new SyncError('tls', undefined, detail);
  if (DNS_CODES.has(code)) return new SyncError('not_found', undefined, detail);
  if (TIMEOUT_CODES.has(code)) return new SyncError('timeout', undefined, detail);
  if (NETWORK_CODES.has(code) || code === 'EAI_AGAIN') return new SyncError('network', undefined, detail);
  if (/certificate|wrong version number|handshake/i.test(text))
    return new SyncError('tls', undefined, detail);
  return new SyncError('protocol', undefined, detail);
}

/** The wait before the next attempt after `failures` temporary failures in a row: 30 s doubling, at most 1 h. */
export function backoffMs(failures: number): number {
  return Math.min(30_000 * 2 ** Math.max(failures - 1, 0), 3_600_000);
}
