// A minimal POP3 client (RFC 1939, STLS from RFC 2595, SASL XOAUTH2 for bearer tokens): what a
// sync needs, UIDL and RETR. Written here rather than taken from npm: node-pop3 and poplib
// document no STLS upgrade with a required-TLS policy, and we want our own coded errors and
// timeouts on every read.
import net from 'node:net';
import tls from 'node:tls';

interface Settings {
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'none';
  username: string;
  auth: 'password' | 'oauth2';
  secret: string;
}

class Pop3Error extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export class Pop3Client {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;

  private constructor(
    private socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    this.attach(socket);
  }

  private attach(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.waiter?.();
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.waiter?.();
    };
    socket.on('error', fail);
    socket.on('close', () =>
      fail(new Pop3Error('The POP3 server closed the connection', 'EConnectionClosed')),
    );
  }

  static async connect(s: Settings, opts: { timeoutMs: number }): Promise<Pop3Client> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const sock =
        s.security === 'tls'
          ? tls.connect({ host: s.host, port: s.port, servername: net.isIP(s.host) ? undefined : s.host })
          : net.connect({ host: s.host, port: s.port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Pop3Error('Connecting timed out', 'CONNECT_TIMEOUT'));
      }, opts.timeoutMs);
      sock.once(s.security === 'tls' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(sock);
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const c = new Pop3Client(socket, opts.timeoutMs);
    try {
      await c.status();
      if (s.security === 'starttls') await c.startTls(s.host);
      if (s.auth === 'oauth2') {
        const token = Buffer.from(`user=${s.username}\x01auth=Bearer ${s.secret}\x01\x01`).toString('base64');
        await c.command(`AUTH XOAUTH2 ${token}`).catch(c.authFailed);
      } else {
        await c.command(`USER ${s.username}`).catch(c.authFailed);
        await c.command(`PASS ${s.secret}`).catch(c.authFailed);
      }
    } catch (err) {
      c.socket.destroy();
      throw err;
    }
    return c;
  }

  private authFailed = (err: Error): never => {
    if (err instanceof Pop3Error && err.code === 'ERR') throw new Pop3Error(err.message, 'AUTH');
    throw err;
  };

  private async startTls(host: string) {
    await this.command('STLS').catch((err: Error) => {
      throw new Pop3Error(`The server does not offer STLS: ${err.message}`, 'ERR_TLS_STLS');
    });
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('error');
    plain.removeAllListeners('close');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect({ socket: plain, servername: net.isIP(host) ? undefined : host });
      t.once('secureConnect', () => {
        t.removeAllListeners('error');
        resolve(t);
      });
      t.once('error', reject);
    });
    this.buf = Buffer.alloc(0);
    this.attach(secure);
  }

  /** Waits until `find` finds what it needs in the buffer, under the timeout. */
  private async read<T>(find: () => T | null): Promise<T> {
    const end = Date.now() + this.timeoutMs;
    for (;;) {
      const r = find();
      if (r !== null) return r;
      if (this.failure) throw this.failure;
      const left = end - Date.now();
      if (left <= 0) throw new Pop3Error('The POP3 server did not answer in time', 'ETIMEOUT');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = null;
          resolve();
        };
      });
    }
  }

  /** One status line: +OK (answered) or -ERR (thrown). */
  private async status(): Promise<string> {
    const line = await this.read(() => {
      const i = this.buf.indexOf('\r\n');
      if (i < 0) return null;
      const l = this.buf.subarray(0, i).toString('utf8');
      this.buf = this.buf.subarray(i + 2);
      return l;
    });
    if (line.startsWith('+OK')) return line.slice(3).trim();
    if (line.startsWith('-ERR')) throw new Pop3Error(line.slice(4).trim() || 'refused', 'ERR');
    // Not echoed: a user pointing the test at an internal service must not read what it said.
    throw new Pop3Error('The server did not answer as a POP3 server does', 'PROTOCOL');
  }

  /** A multi-line answer's body, dot-unstuffed, up to the terminating ".". */
  private async body(): Promise<Buffer> {
    const raw = await this.read(() => {
      const end = this.buf.indexOf('\r\n.\r\n');
      const atStart = this.buf.subarray(0, 3).toString() === '.\r\n';
      if (atStart) {
        this.buf = this.buf.subarray(3);
        return Buffer.alloc(0);
      }
      if (end < 0) return null;
      const b = this.buf.subarray(0, end + 2);
      this.buf = this.buf.subarray(end + 5);
      return b;
    });
    // RFC 1939: a line starting with "." was sent with one more.
    const out: Buffer[] = [];
    let start = 0;
    while (start < raw.length) {
      const nl = raw.indexOf('\r\n', start);
      const stop = nl < 0 ? raw.length : nl + 2;
      out.push(raw[start] === 0x2e ? raw.subarray(start + 1, stop) : raw.subarray(start, stop));
      start = stop;
    }
    return Buffer.concat(out);
  }

  async command(cmd: string): Promise<string> {
    this.socket.write(`${cmd}\r\n`);
    return this.status();
  }

  /** Message number → UIDL, for every message in the maildrop. */
  async uidl(): Promise<Map<number, string>> {
    await this.command('UIDL');
    const map = new Map<number, string>();
    for (const line of (await this.body()).toString('utf8').split('\r\n')) {
      const m = /^(\d+)\s+(\S+)/.exec(line);
      if (m) map.set(Number(m[1]), m[2]);
    }
    return map;
  }

  async retr(n: number): Promise<Buffer> {
    await this.command(`RETR ${n}`);
    return this.body();
  }

  /** The headers only (TOP n 0): enough to read a message's Date. */
  async top(n: number): Promise<Buffer> {
    await this.command(`TOP ${n} 0`);
    return this.body();
  }

  async quit(): Promise<void> {
    try {
      await this.command('QUIT');
    } catch {
      // closing anyway
    }
    this.socket.destroy();
  }

  close() {
    this.socket.destroy();
  }
}
