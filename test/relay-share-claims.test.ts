import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import type { Deps } from '../src/deps.ts';
import { type Presence, startPresence } from '../src/jobs/presence.ts';
import { closeSignPool, deliverDue } from '../src/sending/delivery.ts';
import { relayShare } from '../src/sending/relay-share.ts';
import { loadRelays, type RelaySettings, saveRelay } from '../src/sending/relays.ts';
import { closeRelayTransports } from '../src/sending/transport.ts';
import { adminActor, createTestOrg, ownDatabase, queueMessage, type TestOrg } from './support/app.ts';
import { type CaptureServer, startCaptureServer, until } from './support/mail-peers.ts';

// Two workers on one database split a relay allowing one connection to slow.example: the one with
// none there must stop claiming its messages. Before, it took them at every poll and put them back
// for 2 s; with two loops a worker polling out of phase with the other's could take them every time
// for minutes, and the worker that could send them never saw them (a CI failure of relay-limits).

const own = await ownDatabase(); // a presence register of this file's own
const deps = own.deps;
/** A second worker in the same database: its own db key for presence, transports and claims. */
const second: Deps = { ...deps, db: deps.db.withoutPlugins() };
const presences: Presence[] = [];
let relay: CaptureServer;
afterAll(async () => {
  for (const p of presences) await p.stop();
  for (const d of [deps, second]) {
    closeRelayTransports(d);
    await closeSignPool(d);
  }
  await relay?.stop();
  await deps.close();
});

const queue = (org: TestOrg, to: string) => queueMessage(deps, org, { to_address: to });

const dueNow = (org: TestOrg) =>
  sql`UPDATE messages SET next_attempt_at = now() WHERE org_id = ${org.orgId} AND status = 'queued'`.execute(
    deps.db,
  );

describe('claims under a split relay', () => {
  it('a worker with no connection to a domain leaves its messages (and its subdomains’) to the one with it', async () => {
    relay = await startCaptureServer();
    const a = await startPresence(deps, { intervalMs: 300 });
    presences.push(a);
    const b = await startPresence(second, { intervalMs: 300 });
    presences.push(b);
    await until('both see two workers', () => a.view()?.count === 2 && b.view()?.count === 2, 10_000);

    const org = await createTestOrg(deps, { edition: 'enterprise' });
    const domainLimits = { 'slow.example': { connections: 1 } };
    await saveRelay(deps, adminActor(org), {
      host: '127.0.0.1',
      port: relay.port,
      security: 'none',
      maxConnections: 2,
      maxPerSecond: 50,
      domainLimits,
    });
    // Which of the two has the slow domain's one connection (the split rotates by org).
    const settings = (await loadRelays(deps, [org.orgId])).get(org.orgId) as RelaySettings;
    const [withIt, without] =
      relayShare(settings, a.view() ?? undefined)?.domainLimits['slow.example'].connections === 1
        ? [deps, second]
        : [second, deps];
    const opts = { orgId: org.orgId, limit: 50 };

    await queue(org, 'f1@fast.example');
    await queue(org, 's1@slow.example');
    await queue(org, 's2@mx.slow.example');
    // The first claim cannot know yet: it sends the fast one and puts the two others back.
    const first = await deliverDue(without, opts);
    expect(first).toMatchObject({ claimed: 3, sent: 1, released: 2 });
    await dueNow(org);
    // Now it knows its share, and leaves them.
    expect(await deliverDue(without, opts)).toMatchObject({ claimed: 0 });
    expect(await deliverDue(withIt, opts)).toMatchObject({ claimed: 2, sent: 2 });
    expect(relay.messages.map((m) => m.rcptTo[0]).sort()).toEqual([
      'f1@fast.example',
      's1@slow.example',
      's2@mx.slow.example',
    ]);

    // The one with the share leaves: the other, alone now, sends everything again.
    await presences[withIt === deps ? 0 : 1].stop();
    const left = presences[withIt === deps ? 1 : 0];
    await until('the other is alone', () => left.view()?.count === 1, 10_000);
    await queue(org, 's3@slow.example');
    expect(await deliverDue(without, opts)).toMatchObject({ claimed: 1, sent: 1 });
  });
});
