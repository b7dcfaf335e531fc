// An email's status (F4.5), derived in one place from the message's summary columns
// (0003_mass_email.sql), which the tracking, bounce and reply writers fill from raw events. The
// API sends the derived status; the web UI draws its status bar from the same steps. Pure: no
// database, no Node APIs, so the web app imports it too.
//
// States only move forward. The summary columns only accumulate (first times are kept, counts
// grow), and the state is the furthest step those facts reach, so a late or duplicate event can
// never take a message back: a bounce that arrives after a human open leaves it opened (the
// bounce is still shown), an open stamped earlier than the last one changes nothing.

import type { RelativeOp } from '../crm/criteria/types.ts';

/** messages.status: where the sending is. */
export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'deferred' | 'failed' | 'unknown';

/** What happened after it left, in the order a message moves through it. */
export const PROGRESS = ['sent', 'delivered', 'bounced', 'opened', 'clicked', 'replied'] as const;
export type Progress = (typeof PROGRESS)[number];

/** A message's state: still on its way (the delivery status), or how far it got once sent. */
export type EmailState = Exclude<DeliveryStatus, 'sent'> | Progress;

/** A record's latest email status: its newest email's, in either direction. */
export type LatestState = EmailState | 'received';

// ---- Email status in criteria (F4.8): the choices, shared by the API and the filter editor ----
// (their meaning is in status-criteria.ts)

export const CRITERIA_STATUSES = [
  'sent',
  'delivered',
  'opened',
  'clicked',
  'bounced',
  'not_opened',
  'not_clicked',
  'replied',
  'opened_not_replied',
  'received',
] as const;
export type CriteriaStatus = (typeof CRITERIA_STATUSES)[number];

/** Windows that look back (an email status is never in the future). */
export const STATUS_WINDOWS = [
  'today',
  'yesterday',
  'this_week',
  'last_week',
  'this_month',
  'last_month',
  'this_year',
  'last_year',
  'in_last_n_days',
  'older_than_n_days',
] as const satisfies readonly RelativeOp[];
export type StatusWindow = (typeof STATUS_WINDOWS)[number];

/** The steps of the status bar, left to right; a bounce is drawn in place of "delivered". */
export const BAR_STEPS = ['sent', 'delivered', 'opened', 'clicked', 'replied'] as const;

type Time = Date | string | null;

/** The columns of a messages row the status needs. */
export interface MessageSummary {
  status: DeliveryStatus;
  /** 'outbox': kept locally, never handed to a server, so never "delivered". */
  transport?: 'relay' | 'outbox';
  sent_at: Time;
  tracked: boolean;
  bounced_at: Time;
  bounce_kind: 'hard' | 'soft' | 'policy' | null;
  bounce_reason: string | null;
  opened_at: Time;
  last_opened_at: Time;
  open_count: number;
  machine_open_count: number;
  clicked_at: Time;
  last_clicked_at: Time;
  click_count: number;
  machine_click_count: number;
  replied_at: Time;
}

export const SUMMARY_COLUMNS = [
  'status',
  'transport',
  'sent_at',
  'tracked',
  'bounced_at',
  'bounce_kind',
  'bounce_reason',
  'opened_at',
  'last_opened_at',
  'open_count',
  'machine_open_count',
  'clicked_at',
  'last_clicked_at',
  'click_count',
  'machine_click_count',
  'replied_at',
] as const satisfies readonly (keyof MessageSummary)[];

export interface Counted {
  /** Human events: what "opened" and "clicked" mean, and what rates use. */
  human: number;
  /** Machine opens (privacy proxies, prefetch) and scanner clicks, shown beside. */
  machine: number;
  first: string | null;
  last: string | null;
}

export interface EmailStatus {
  state: EmailState;
  /** Whether opens and clicks could be seen at all (HTML, one recipient, insights on). */
  tracked: boolean;
  sentAt: string | null;
  bounce: { at: string; kind: 'hard' | 'soft' | 'policy' | null; reason: string | null } | null;
  opens: Counted;
  clicks: Counted;
  repliedAt: string | null;
}

const iso = (t: Time): string | null => (t === null ? null : t instanceof Date ? t.toISOString() : t);
const earliest = (a: string | null, b: string | null) => (a === null ? b : b === null || a <= b ? a : b);
const latest = (a: string | null, b: string | null) => (a === null ? b : b === null || a >= b ? a : b);

const RANK: Record<Progress, number> = Object.fromEntries(PROGRESS.map((p, i) => [p, i])) as Record<
  Progress,
  number
>;

/** How far along a state is; -1 for a message not (yet) sent. */
export function progressRank(state: LatestState): number {
  return state in RANK ? RANK[state as Progress] : -1;
}

/** The one rule: a message's status from its summary columns. */
export function emailStatus(m: MessageSummary): EmailStatus {
  // A click is also an open (F4.3): the first open is no later than the first click.
  const opens: Counted = {
    human: Math.max(m.open_count, m.click_count > 0 ? 1 : 0),
    machine: m.machine_open_count,
    first: earliest(iso(m.opened_at), iso(m.clicked_at)),
    last: latest(iso(m.last_opened_at) ?? iso(m.opened_at), iso(m.last_clicked_at) ?? iso(m.clicked_at)),
  };
  const clicks: Counted = {
    human: m.click_count,
    machine: m.machine_click_count,
    first: iso(m.clicked_at),
    last: iso(m.last_clicked_at) ?? iso(m.clicked_at),
  };
  const bouncedAt = iso(m.bounced_at);
  const repliedAt = iso(m.replied_at);
  return {
    state: stateOf(m, opens, clicks, bouncedAt, repliedAt),
    tracked: m.tracked,
    sentAt: iso(m.sent_at),
    bounce: bouncedAt ? { at: bouncedAt, kind: m.bounce_kind, reason: m.bounce_reason } : null,
    opens,
    clicks,
    repliedAt,
  };
}

function stateOf(
  m: MessageSummary,
  opens: Counted,
  clicks: Counted,
  bouncedAt: string | null,
  repliedAt: string | null,
): EmailState {
  // A reply, a human click or a human open proves the message arrived, whatever the order in
  // which the events were recorded.
  if (repliedAt) return 'replied';
  if (clicks.first) return 'clicked';
  if (opens.first) return 'opened';
  if (bouncedAt) return 'bounced';
  // Bounces can come back for a message whose send we never saw finish (a crash while sending).
  if (m.status !== 'sent') return m.status;
  return m.transport === 'outbox' ? 'sent' : 'delivered';
}

/** Is the step of the status bar reached? (bounced stands in for delivered, drawn in red) */
export function stepReached(s: EmailStatus, step: (typeof BAR_STEPS)[number]): boolean {
  if (step === 'sent') return s.sentAt !== null || progressRank(s.state) >= 0;
  if (step === 'delivered') return progressRank(s.state) >= RANK.delivered && s.state !== 'bounced';
  return progressRank(s.state) >= RANK[step];
}

/**
 * A record's latest email status: its newest message's state, unless an email received from the
 * record is newer; a reply to that newest message (at or after the received email) stays "replied".
 */
export function latestState(
  newest: EmailStatus | null,
  receivedAt: string | null,
): { state: LatestState; at: string } | null {
  // A message refused while sending (a 5xx, recorded as a bounce) has no send time, only its bounce.
  const sentAt = newest ? (newest.sentAt ?? newest.bounce?.at ?? null) : null;
  if (!newest || !sentAt) return receivedAt ? { state: 'received', at: receivedAt } : null;
  if (receivedAt && receivedAt > sentAt && !(newest.repliedAt && newest.repliedAt >= receivedAt))
    return { state: 'received', at: receivedAt };
  return { state: newest.state, at: newest.repliedAt ?? sentAt };
}
