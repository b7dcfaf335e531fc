// What a folder's sync has to do, decided from the cursor stored for it (mailbox_folders) and
// what the server answered to SELECT. Pure: no I/O, unit-tested (cursor.test.ts).
// RFC 3501: UIDs are valid only under one UIDVALIDITY, and every new message gets a UID at or
// above UIDNEXT. RFC 7162: HIGHESTMODSEQ moves whenever a message's flags change (CONDSTORE).

export interface FolderCursor {
  uidvalidity: number | null;
  uidnext: number | null;
  highestModseq: number | null;
  /** Every UID up to here has been looked at. */
  lastUid: number;
}

export interface ServerFolderStatus {
  uidValidity: number;
  uidNext: number;
  /** null when the server has no CONDSTORE (or no mod-sequences for this folder). */
  highestModseq: number | null;
}

export interface FolderPlan {
  /** UIDVALIDITY changed: the folder's stored copies (mail_locations) are stale; drop them first. */
  reset: boolean;
  /** Fetch messages with UIDs from here on (that arrived since `since`), or nothing new. */
  fetchNew: { fromUid: number; since: Date } | null;
  /**
   * Flag changes to apply to messages already stored: those changed since a mod-sequence
   * (CONDSTORE), or 'all' (a server without CONDSTORE: read every stored message's flags).
   */
  flags: { changedSince: number } | 'all' | null;
  /** The cursor once the plan is done (lastUid also moves batch by batch as mail is ingested). */
  done: FolderCursor;
}

const DAY_MS = 86_400_000;

/** The backfill window: mail that arrived on or after this day. */
export function backfillSince(now: Date, backfillDays: number): Date {
  return new Date(now.getTime() - backfillDays * DAY_MS);
}

export function planFolder(
  cursor: FolderCursor | null,
  server: ServerFolderStatus,
  opts: { now: Date; backfillDays: number },
): FolderPlan {
  const since = backfillSince(opts.now, opts.backfillDays);
  const done: FolderCursor = {
    uidvalidity: server.uidValidity,
    uidnext: server.uidNext,
    highestModseq: server.highestModseq,
    lastUid: Math.max(server.uidNext - 1, 0),
  };
  // Never synced, or synced under another UIDVALIDITY: start over with the backfill.
  if (!cursor || cursor.uidvalidity === null || cursor.uidvalidity !== server.uidValidity) {
    const reset = cursor !== null && cursor.uidvalidity !== null;
    const empty = server.uidNext <= 1;
    return { reset, fetchNew: empty ? null : { fromUid: 1, since }, flags: null, done };
  }
  done.lastUid = Math.max(done.lastUid, cursor.lastUid);
  const fetchNew = server.uidNext - 1 > cursor.lastUid ? { fromUid: cursor.lastUid + 1, since } : null;
  let flags: FolderPlan['flags'] = null;
  if (cursor.lastUid > 0) {
    if (server.highestModseq === null) flags = 'all';
    else if (cursor.highestModseq === null || server.highestModseq > cursor.highestModseq)
      // Without a stored mod-sequence (the server gained CONDSTORE) every flag is read once.
      flags = cursor.highestModseq === null ? 'all' : { changedSince: cursor.highestModseq };
  }
  return { reset: false, fetchNew, flags, done };
}

/** The cursor after a batch up to `maxUid` has been ingested (it never moves back). */
export function advanceCursor(cursor: FolderCursor, maxUid: number): FolderCursor {
  return { ...cursor, lastUid: Math.max(cursor.lastUid, maxUid) };
}

/** The plan did nothing: no new UIDs and no flag changes. */
export function isIdle(plan: FolderPlan): boolean {
  return !plan.reset && plan.fetchNew === null && plan.flags === null;
}
