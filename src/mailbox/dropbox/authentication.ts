import { type AuthenticateOptions, authenticate } from 'mailauth';

// SPF and DKIM of a message received at the dropbox, as shown to admins. mailauth reports one
// result per DKIM signature; the one that speaks for the From domain (aligned) is preferred, then a
// passing one, so a signature by some relay does not hide the sender's own.

export type Resolver = NonNullable<AuthenticateOptions['resolver']>;

export interface MailAuthSummary {
  spf: string;
  spfDetail: string | null;
  dkim: string;
  dkimDomain: string | null;
  dkimDetail: string | null;
}

export async function checkMailAuth(
  raw: Buffer,
  o: { ip: string; helo: string; sender: string; mta: string; resolver?: Resolver },
): Promise<MailAuthSummary> {
  const r = await authenticate(raw, {
    ip: o.ip,
    helo: o.helo,
    sender: o.sender,
    mta: o.mta,
    resolver: o.resolver,
    disableArc: true,
    disableBimi: true,
    disableDmarc: true,
  });
  const sigs = r.dkim?.results ?? [];
  const best =
    sigs.find((s) => s.status.aligned && s.status.result === 'pass') ??
    sigs.find((s) => s.status.result === 'pass') ??
    sigs.find((s) => s.status.aligned) ??
    sigs[0];
  return {
    spf: r.spf ? r.spf.status.result : 'none',
    spfDetail: r.spf ? (r.spf.status.comment ?? null) : 'no envelope sender',
    dkim: best ? best.status.result : 'none',
    dkimDomain: best?.signingDomain ?? null,
    dkimDetail: best ? (best.status.comment ?? null) : 'message not signed',
  };
}
