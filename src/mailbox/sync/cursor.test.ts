import { describe, expect, it } from 'vitest';
import { advanceCursor, backfillSince, isIdle, planFolder } from './cursor.ts';

const now = new Date('2026-11-30T12:00:00Z');
const opts = { now, backfillDays: 30 };
const since = new Date('2026-10-31T12:00:00Z');

describe('planFolder', () => {
  it('backfills a folder never synced, from UID 1 within the window', () => {
    const p = planFolder(null, { uidValidity: 7, uidNext: 101, highestModseq: 50 }, opts);
    expect(p).toEqual({
      reset: false,
      fetchNew: { fromUid: 1, since },
      flags: null,
      done: { uidvalidity: 7, uidnext: 101, highestModseq: 50, lastUid: 100 },
    });
  });

  it('has nothing to fetch in an empty folder', () => {
    const p = planFolder(null, { uidValidity: 7, uidNext: 1, highestModseq: 1 }, opts);
    expect(p.fetchNew).toBeNull();
    expect(p.done.lastUid).toBe(0);
  });

  it('resyncs cleanly when UIDVALIDITY changed: reset, then a backfill from UID 1', () => {
    const cursor = { uidvalidity: 7, uidnext: 101, highestModseq: 50, lastUid: 100 };
    const p = planFolder(cursor, { uidValidity: 8, uidNext: 41, highestModseq: 3 }, opts);
    expect(p.reset).toBe(true);
    expect(p.fetchNew).toEqual({ fromUid: 1, since });
    expect(p.flags).toBeNull();
    expect(p.done).toEqual({ uidvalidity: 8, uidnext: 41, highestModseq: 3, lastUid: 40 });
  });

  it('fetches only UIDs above the last one looked at', () => {
    const cursor = { uidvalidity: 7, uidnext: 101, highestModseq: 50, lastUid: 100 };
    const p = planFolder(cursor, { uidValidity: 7, uidNext: 104, highestModseq: 53 }, opts);
    expect(p.reset).toBe(false);
    expect(p.fetchNew).toEqual({ fromUid: 101, since });
    expect(p.flags).toEqual({ changedSince: 50 });
    expect(p.done.lastUid).toBe(103);
  });

  it('continues a sync cut off mid-way from the last ingested batch', () => {
    const cursor = { uidvalidity: 7, uidnext: null, highestModseq: null, lastUid: 40 };
    const p = planFolder(cursor, { uidValidity: 7, uidNext: 101, highestModseq: 50 }, opts);
    expect(p.fetchNew).toEqual({ fromUid: 41, since });
    // No mod-sequence stored yet: the stored messages' flags are all read once.
    expect(p.flags).toBe('all');
  });

  it('only reads flag changes when HIGHESTMODSEQ moved and nothing is new', () => {
    const cursor = { uidvalidity: 7, uidnext: 101, highestModseq: 50, lastUid: 100 };
    const p = planFolder(cursor, { uidValidity: 7, uidNext: 101, highestModseq: 52 }, opts);
    expect(p.fetchNew).toBeNull();
    expect(p.flags).toEqual({ changedSince: 50 });
  });

  it('does nothing when nothing changed', () => {
    const cursor = { uidvalidity: 7, uidnext: 101, highestModseq: 50, lastUid: 100 };
    const p = planFolder(cursor, { uidValidity: 7, uidNext: 101, highestModseq: 50 }, opts);
    expect(isIdle(p)).toBe(true);
    expect(p.done).toEqual(cursor);
  });

  it('reads every stored flag on a server without CONDSTORE', () => {
    const cursor = { uidvalidity: 7, uidnext: 101, highestModseq: null, lastUid: 100 };
    const p = planFolder(cursor, { uidValidity: 7, uidNext: 101, highestModseq: null }, opts);
    expect(p.flags).toBe('all');
    expect(isIdle(p)).toBe(false);
  });

  it('never moves the cursor back (a server answering a smaller UIDNEXT)', () => {
    const cursor = { uidvalidity: 7, uidnext: 101, highestModseq: 50, lastUid: 100 };
    const p = planFolder(cursor, { uidValidity: 7, uidNext: 90, highestModseq: 50 }, opts);
    expect(p.fetchNew).toBeNull();
    expect(p.done.lastUid).toBe(100);
    expect(advanceCursor(cursor, 60).lastUid).toBe(100);
    expect(advanceCursor(cursor, 160).lastUid).toBe(160);
  });

  it('counts the backfill window in days', () => {
    expect(backfillSince(now, 1).toISOString()).toBe('2026-11-29T12:00:00.000Z');
  });
});
