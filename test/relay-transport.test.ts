import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import type { RelaySettings } from '../src/sending/relays.ts';
import { closeRelayTransports, dropRelayTransport, relayTransport } from '../src/sending/transport.ts';
import { startCaptureServer } from './support/mail-peers.ts';

// Replacing a relay's transport (new settings, or a new split of its limits between workers): the
// new one opens no connection before the old one's are closed, and a transport closed while a
// message waited for it answers "deferred" rather than failing the batch.

const deps = {
  db: {} as never,
  config: loadConfig({ PARLEY_SECRET: 'relay-transport-test-secret-0123456789' }),
};
const raw = Buffer.from('Subject: hi\r\n\r\nhello\r\n');

function settings(port: number, version: string, orgId: string): RelaySettings {
  return {
    orgId,
    host: '127.0.0.1',
    port,
    security: 'none',
    username: null,
    passwordEnc: null,
    maxConnections: 1,
    maxPerSecond: 100,
    domainLimits: {},
    sendingDomain: null,
    version,
  };
}

describe('relay transports replaced', () => {
  it('the new one waits for the old one’s connections to close; a closed one defers', async () => {
    const server = await startCaptureServer({ onMessage: () => new Promise((r) => setTimeout(r, 300)) });
    const org = randomUUID();
    const first = relayTransport(deps, settings(server.port, 'v1', org));
    await first.opened;
    const slow = first.send({ from: 'b@example.com', to: 'r1@example.org' }, raw);
    await new Promise((r) => setTimeout(r, 100)); // on the wire

    const second = relayTransport(deps, settings(server.port, 'v2', org));
    expect(first.closed).toBe(true);
    let opened = false;
    void second.opened.then(() => {
      opened = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(opened).toBe(false); // the first one's message is still being answered
    expect((await slow).status).toBe('sent');
    await second.opened;
    // closed on our side; the server hears the FIN a moment later
    await new Promise((r) => setTimeout(r, 20));
    expect(server.open).toBe(0);
    expect((await second.send({ from: 'b@example.com', to: 'r2@example.org' }, raw)).status).toBe('sent');

    dropRelayTransport(deps, org);
    expect(second.closed).toBe(true);
    const late = await second.send({ from: 'b@example.com', to: 'r3@example.org' }, raw);
    expect(late).toMatchObject({ status: 'deferred', code: null });
    expect(server.messages.map((m) => m.rcptTo[0])).toEqual(['r1@example.org', 'r2@example.org']);
    expect(server.maxOpen).toBe(1);
    await closeRelayTransports(deps);
    await server.stop();
  });
});
