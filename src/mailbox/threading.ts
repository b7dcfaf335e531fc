// Which conversation an incoming email belongs to. Pure: ingest.ts gathers what is already stored
// (mail and Parley's sent messages named by the new mail's headers, recent mail with the same
// subject) and this decides, for a whole batch at once, so that a reply and its parent arriving
// together land in one thread.

/**
 * Reply and forward prefixes in the languages mail clients write them: "Re:", "RE[2]:", "Fwd:",
 * "AW:", "WG:", "SV:", "VS:", "Rif:", "Antw:", "TR:", "RV:", "Odp:", … repeated. Brackets such as
 * "[EXT]" stay: they are part of what people read. One pattern for JS and PostgreSQL (ingest.ts
 * passes it to regexp_replace), so it uses only syntax both understand the same way.
 */
export const SUBJECT_PREFIX =
  '^([[:space:]]*(re|fwd?|aw|wg|sv|vs|tr|rif|r|antw|antwort|ref|rv|enc|odp|vb|ynt|atb|vl|res|doorst|fs)[[:space:]]*(\\[[0-9]+\\]|\\([0-9]+\\))?[[:space:]]*[:：][[:space:]]*)+';

// JavaScript has no POSIX classes: the same pattern with them spelled out.
const PREFIX_RE = new RegExp(SUBJECT_PREFIX.replaceAll('[[:space:]]', '\\s'), 'i');

/** The subject without reply/forward prefixes, whitespace collapsed, lower-cased. */
export function normalizeSubject(subject: string): string {
  return subject.replace(PREFIX_RE, '').replace(/\s+/g, ' ').trim().toLowerCase();
}

/** Emails with the same subject and a shared participant this close together are one thread. */
export const SUBJECT_WINDOW_MS = 30 * 24 * 3_600_000;

export interface ThreadItem {
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  subject: string;
  /** Lower-cased addresses taking part, the org's own left out (they take part in everything). */
  participants: string[];
  date: Date;
}

export interface SubjectCandidate {
  threadId: string;
  /** normalizeSubject of its subject. */
  subject: string;
  participants: string[];
  date: Date;
}

export interface ThreadKnowledge {
  /** Stored mail by Message-ID → its thread. */
  storedByMessageId: ReadonlyMap<string, string>;
  /** Parley's sent messages by Message-ID → messages.id (their conversation's id). */
  parleyByMessageId: ReadonlyMap<string, string>;
  /** Stored mail replying to a Message-ID (a reply synced before its parent) → the reply's thread. */
  storedReplyTo: ReadonlyMap<string, string>;
  /** Recent stored mail with the subjects of the batch. */
  subjectCandidates: readonly SubjectCandidate[];
}

/**
 * A thread id for each item: the thread of the mail (or Parley message) its References or
 * In-Reply-To name, oldest first (the most stable across partly synced mailboxes); else the thread
 * of a stored reply to it; else that of the nearest email with the same subject sharing a
 * participant within 30 days; else a new one from newId().
 */
export function chooseThreads(
  items: readonly ThreadItem[],
  known: ThreadKnowledge,
  newId: () => string,
): string[] {
  const out: (string | undefined)[] = new Array(items.length);
  const byMessageId = new Map<string, number>();
  items.forEach((it, i) => {
    if (it.messageId && !byMessageId.has(it.messageId)) byMessageId.set(it.messageId, i);
  });
  const subjects = new Map<string, SubjectCandidate[]>();
  for (const c of known.subjectCandidates) {
    const list = subjects.get(c.subject) ?? [];
    list.push(c);
    subjects.set(c.subject, list);
  }
  const norm = items.map((it) => normalizeSubject(it.subject));
  const resolving = new Set<number>();

  const resolve = (i: number): string => {
    const done = out[i];
    if (done) return done;
    resolving.add(i);
    const it = items[i];
    let thread: string | undefined;
    const refs = [...it.references, ...(it.inReplyTo ? [it.inReplyTo] : [])];
    for (const ref of refs) {
      if (ref === it.messageId) continue;
      const j = byMessageId.get(ref);
      // A parent in this batch; a cycle of references (broken clients) falls through.
      if (j !== undefined && !resolving.has(j)) thread = resolve(j);
      else thread = known.storedByMessageId.get(ref) ?? known.parleyByMessageId.get(ref);
      if (thread) break;
    }
    if (!thread && it.messageId)
      thread = known.parleyByMessageId.get(it.messageId) ?? known.storedReplyTo.get(it.messageId);
    if (!thread && norm[i]) thread = bySubject(it, norm[i]);
    thread ??= newId();
    out[i] = thread;
    resolving.delete(i);
    subjects.set(norm[i], [
      ...(subjects.get(norm[i]) ?? []),
      { threadId: thread, subject: norm[i], participants: it.participants, date: it.date },
    ]);
    return thread;
  };

  const bySubject = (it: ThreadItem, subject: string): string | undefined => {
    let best: SubjectCandidate | undefined;
    let bestGap = Number.POSITIVE_INFINITY;
    const mine = new Set(it.participants);
    for (const c of subjects.get(subject) ?? []) {
      const gap = Math.abs(c.date.getTime() - it.date.getTime());
      if (gap > SUBJECT_WINDOW_MS || gap >= bestGap) continue;
      if (!c.participants.some((p) => mine.has(p))) continue;
      best = c;
      bestGap = gap;
    }
    return best?.threadId;
  };

  // Oldest first, so that subject matches within the batch join the earlier email's thread.
  const order = items.map((_, i) => i).sort((a, b) => items[a].date.getTime() - items[b].date.getTime());
  for (const i of order) resolve(i);
  return out as string[];
}
