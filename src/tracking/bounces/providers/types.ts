import type { BounceKind } from '../kinds.ts';

// What every provider's webhook is turned into before it is matched to a message.

export interface ProviderEvent {
  kind: BounceKind;
  recipient: string;
  status: string;
  reason: string;
  at: Date;
  /** The original Message-ID header, when the provider reports it. */
  messageIdHeader?: string;
  /** Envelope sender or other addresses that may be our VERP return path. */
  verpCandidates?: string[];
}

export interface WebhookRequest {
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** The outcome of reading one webhook call: events, or a refusal with the HTTP status to answer. */
export type ProviderResult =
  | { ok: true; events: ProviderEvent[]; reply?: Record<string, unknown> }
  | { ok: false; status: 400 | 401 | 403; message: string };

export const refuse = (status: 400 | 401 | 403, message: string): ProviderResult => ({
  ok: false,
  status,
  message,
});

export const header = (req: WebhookRequest, name: string): string => {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
};

export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

export { enhancedCode } from '../kinds.ts';

export const str = (v: unknown): string =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
