import { describe, expect, it } from 'vitest';
import { chooseThreads, normalizeSubject, type ThreadItem, type ThreadKnowledge } from './threading.ts';

describe('normalizeSubject', () => {
  it.each([
    ['Re: Pricing', 'pricing'],
    ['RE: AW: Fwd:  pricing ', 'pricing'],
    ['Re[2]: Pricing', 'pricing'],
    ['RE(3): Pricing', 'pricing'],
    ['Fw: WG: SV: VS: Rif: Antw: TR: R: RV: Pricing', 'pricing'],
    ['re : Pricing', 'pricing'],
    ['Re: [EXT] Pricing', '[ext] pricing'],
    ['[EXT] Re: Pricing', '[ext] re: pricing'],
    ['Results: Q3', 'results: q3'],
    ['Review of   the\tcontract', 'review of the contract'],
    ['Re:', ''],
    ['', ''],
  ])('%j → %j', (subject, want) => {
    expect(normalizeSubject(subject)).toBe(want);
  });
});

const day = 86_400_000;
const t0 = Date.UTC(2026, 0, 10);
const none: ThreadKnowledge = {
  storedByMessageId: new Map(),
  parleyByMessageId: new Map(),
  storedReplyTo: new Map(),
  subjectCandidates: [],
};
const item = (over: Partial<ThreadItem>): ThreadItem => ({
  messageId: null,
  inReplyTo: null,
  references: [],
  subject: 'Hello',
  participants: ['a@x.example'],
  date: new Date(t0),
  ...over,
});
const ids = () => {
  let n = 0;
  return () => `new${++n}`;
};

describe('chooseThreads', () => {
  it('follows References root first, then In-Reply-To, to stored mail or to Parley messages', () => {
    const known: ThreadKnowledge = {
      ...none,
      storedByMessageId: new Map([
        ['<root>', 'T-root'],
        ['<mid>', 'T-mid'],
      ]),
      parleyByMessageId: new Map([['<parley>', 'M1']]),
    };
    const got = chooseThreads(
      [
        item({ messageId: '<a>', references: ['<unknown>', '<root>', '<mid>'], inReplyTo: '<mid>' }),
        item({ messageId: '<b>', inReplyTo: '<parley>' }),
        item({ messageId: '<parley>' }),
        item({ messageId: '<c>', inReplyTo: '<nobody>', subject: 'Other' }),
      ],
      known,
      ids(),
    );
    expect(got).toEqual(['T-root', 'M1', 'M1', 'new1']);
  });

  it('puts a reply and its parent in one batch together, whichever comes first, and survives cycles', () => {
    const got = chooseThreads(
      [
        item({ messageId: '<r2>', inReplyTo: '<r1>', date: new Date(t0 + 2) }),
        item({ messageId: '<r1>', inReplyTo: '<p>', date: new Date(t0 + 1) }),
        item({ messageId: '<p>', date: new Date(t0 + 3), subject: 'Other' }),
        item({ messageId: '<x>', inReplyTo: '<y>', subject: 'Loop' }),
        item({ messageId: '<y>', inReplyTo: '<x>', subject: 'Loop' }),
      ],
      none,
      ids(),
    );
    expect(got[0]).toBe(got[1]);
    expect(got[1]).toBe(got[2]);
    expect(got[3]).toBe(got[4]);
    expect(got[3]).not.toBe(got[0]);
  });

  it('joins the thread of a stored reply that names the new mail (its parent synced later)', () => {
    const got = chooseThreads(
      [item({ messageId: '<parent>', subject: 'X' })],
      { ...none, storedReplyTo: new Map([['<parent>', 'T-child']]) },
      ids(),
    );
    expect(got).toEqual(['T-child']);
  });

  it('falls back to the nearest same-subject email sharing a participant within 30 days', () => {
    const known: ThreadKnowledge = {
      ...none,
      subjectCandidates: [
        { threadId: 'far', subject: 'hello', participants: ['a@x.example'], date: new Date(t0 - 20 * day) },
        { threadId: 'near', subject: 'hello', participants: ['a@x.example'], date: new Date(t0 - 2 * day) },
        { threadId: 'stranger', subject: 'hello', participants: ['z@x.example'], date: new Date(t0) },
        { threadId: 'old', subject: 'hello', participants: ['b@x.example'], date: new Date(t0 - 31 * day) },
      ],
    };
    const got = chooseThreads(
      [
        item({ subject: 'Re: Hello' }),
        item({ subject: 'Hello', participants: ['b@x.example'] }),
        // Same batch, later, shares b: joins the previous one's new thread.
        item({
          subject: 'Fwd: hello',
          participants: ['b@x.example', 'c@x.example'],
          date: new Date(t0 + day),
        }),
        item({ subject: 'Re:', participants: ['a@x.example'] }),
      ],
      known,
      ids(),
    );
    expect(got[0]).toBe('near');
    expect(got[1]).toMatch(/^new/);
    expect(got[2]).toBe(got[1]);
    // An empty subject never threads by subject.
    expect(got[3]).toMatch(/^new/);
    expect(got[3]).not.toBe(got[1]);
  });
});
