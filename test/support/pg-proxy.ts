import net from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that can lose the answer to a statement after the server has
 * committed it: what a crash or a broken connection does between the commit and the client
 * hearing of it. The trap holds back the server's answer until its ReadyForQuery (sent only once
 * the statement's transaction is over), then cuts both sides without passing any of it on.
 */
export interface PgProxy {
  /** The database URL through the proxy. */
  url: string;
  /** The next statement whose text contains `text` loses its answer; resolves once it has. */
  loseAnswerTo(text: string): Promise<void>;
  close(): Promise<void>;
}

// ReadyForQuery: 'Z', length 5, the transaction status byte.
const READY = Buffer.from([0x5a, 0, 0, 0, 5]);

export async function startPgProxy(dbUrl: string): Promise<PgProxy> {
  const target = new URL(dbUrl);
  let trap: { text: string; lost: () => void } | null = null;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let holding: (() => void) | null = null;
    let held = Buffer.alloc(0);
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => {
      if (trap && d.includes(trap.text)) {
        holding = trap.lost;
        trap = null;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!holding) {
        client.write(d);
        return;
      }
      held = Buffer.concat([held, d]);
      const at = held.length - 6;
      if (at >= 0 && held.subarray(at, at + 5).equals(READY)) {
        cut();
        holding();
      }
    });
    for (const s of [client, upstream]) {
      s.on('error', cut);
      s.on('close', () => {
        sockets.delete(s);
        cut();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(dbUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    loseAnswerTo: (text) =>
      new Promise<void>((resolve) => {
        trap = { text, lost: resolve };
      }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
