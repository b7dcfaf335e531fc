// A relay's limits hold across every worker process (issue 8): the live workers (jobs/presence.ts)
// split each relay's messages per second, connections and per-domain limits between them. A relay
// allowing fewer connections than there are workers is sent through by that many of them only,
// picked by rotating the workers' order by the org, so that many small relays do not all land on
// the first worker. Splitting beats a shared token bucket in PostgreSQL here: the delivery path
// reserves send slots synchronously in claim order (delivery.ts), which a round trip per slot (or
// per block of slots) would break, and a relay's connection count cannot be bucketed at all.
// The price: a worker that happens to have no work for a relay leaves its share unused.
import type { DomainLimit } from '../db/schema.ts';
import type { WorkerView } from '../jobs/presence.ts';
import type { RelaySettings } from './relays.ts';

/** A message left to the other workers (no share of its relay, or of its domain, here) is due again this much later. */
export const LEFT_TO_OTHERS_RETRY_MS = 2_000;

/** What a share's transport version ends with: the view of the workers it was split under. */
const shareTag = (view: WorkerView) => `|${view.rank}/${view.count}`;

/** Whether a transport of this `version` was built for this worker's share under `view`. */
export const isShareUnder = (version: string, view: WorkerView | undefined): boolean =>
  view !== undefined && version.endsWith(shareTag(view));

/** The first 32 bits of the org's UUID: where the rotation starts for this org's relay. */
function offsetOf(orgId: string, count: number): number {
  const n = Number.parseInt(orgId.replace(/-/g, '').slice(0, 8), 16);
  return Number.isFinite(n) ? n % count : 0;
}

/**
 * This worker's part of `relay`'s limits: the settings to build its transport with, or null when
 * it sends nothing through this relay (the relay has fewer connections than there are workers).
 * Without a view (one process alone, the embedded default) the whole relay is this process's.
 * A domain entry with `connections: 0` means "none from this worker": its messages go back to the
 * queue for a worker that has some.
 */
export function relayShare(relay: RelaySettings, view: WorkerView | undefined): RelaySettings | null {
  if (!view || view.count <= 1) return relay;
  const senders = Math.min(view.count, relay.maxConnections);
  const position = (view.rank - offsetOf(relay.orgId, view.count) + view.count) % view.count;
  if (position >= senders) return null;
  // `total` split into `senders` whole parts, the first ones taking the remainder.
  const part = (total: number) => Math.floor(total / senders) + (position < total % senders ? 1 : 0);
  const domainLimits: Record<string, DomainLimit> = {};
  for (const [domain, limit] of Object.entries(relay.domainLimits)) {
    const mine: DomainLimit = {};
    // Fewer connections to the domain than senders: only that many send there, at its whole rate.
    const domainSenders = limit.connections ? Math.min(senders, limit.connections) : senders;
    if (limit.connections) mine.connections = part(limit.connections);
    if (limit.perSecond) mine.perSecond = limit.perSecond / domainSenders;
    domainLimits[domain] = mine;
  }
  return {
    ...relay,
    maxConnections: part(relay.maxConnections),
    maxPerSecond: relay.maxPerSecond / senders,
    domainLimits,
    // a new share builds a new transport (its pool sized to it); the old one closes after its messages
    version: `${relay.version}${shareTag(view)}`,
  };
}
