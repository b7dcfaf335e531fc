// Which folders of a mailbox are its Inbox and its Sent mail: SPECIAL-USE (RFC 6154) flags when
// the server reports them, else the names clients commonly give them.

export interface ListedFolder {
  path: string;
  specialUse?: string;
  /** 'extension': reported by the server; 'name' or 'user': guessed. */
  specialUseSource?: string;
  flags?: Set<string>;
}

export const SENT_NAMES = [
  'Sent',
  'Sent Items',
  'Sent Messages',
  'Sent Mail',
  'INBOX.Sent',
  'INBOX/Sent',
  'INBOX.Sent Items',
  'INBOX.Sent Messages',
  '[Gmail]/Sent Mail',
  '[Google Mail]/Sent Mail',
  'Gesendet',
  'Gesendete Elemente',
  'Envoyés',
  'Éléments envoyés',
  'Enviados',
  'Posta inviata',
  'Verzonden',
];

const selectable = (f: ListedFolder) => !f.flags?.has('\\Noselect') && !f.flags?.has('\\NonExistent');

export function pickFolders(list: ListedFolder[]): { inbox: string; sent: string | null } {
  const usable = list.filter(selectable);
  const inbox =
    usable.find((f) => f.path.toUpperCase() === 'INBOX')?.path ??
    usable.find((f) => f.specialUse === '\\Inbox')?.path ??
    'INBOX';
  const byServer = usable.find((f) => f.specialUse === '\\Sent' && f.specialUseSource === 'extension');
  if (byServer) return { inbox, sent: byServer.path };
  const lower = new Map(usable.map((f) => [f.path.toLowerCase(), f.path]));
  for (const name of SENT_NAMES) {
    const hit = lower.get(name.toLowerCase());
    if (hit) return { inbox, sent: hit };
  }
  const guessed = usable.find((f) => f.specialUse === '\\Sent');
  return { inbox, sent: guessed?.path ?? null };
}
