// Real mail servers for tests, on 127.0.0.1 and free ports chosen at run time:
// - an in-process smtp-server that captures what arrives (envelope and exact bytes);
// - Postfix's smtp-sink as a child process, a "remote MX" that can inject faults;
// - a private Postfix instance (own config, queue and data directories in a temp folder, started
//   with `postfix -c`, no systemd) as a relay. It never touches /etc/postfix or a system Postfix.
// Postfix comes from Debian (.ci/run installs it); without it these helpers throw, loudly.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

export async function until<T>(
  what: string,
  fn: () => T | undefined | null | false,
  timeoutMs = 15_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------------------------------------
// In-process capture server

export interface Captured {
  mailFrom: string;
  rcptTo: string[];
  raw: Buffer;
  /** AUTH username, when the client logged in. */
  user?: string;
}

export interface CaptureServer {
  port: number;
  messages: Captured[];
  /** SMTP sessions opened so far, and those open now. */
  readonly connections: number;
  readonly open: number;
  /** The most sessions that were open at once. */
  readonly maxOpen: number;
  /** Resolves once `n` messages have arrived in all. */
  waitFor(n: number, timeoutMs?: number): Promise<Captured[]>;
  stop(): Promise<void>;
}

export interface CaptureOptions {
  /** Required login; without it AUTH is optional and any credentials are accepted. */
  auth?: { user: string; pass: string };
  /** Throw an Error with responseCode to refuse a recipient (e.g. 451, 550). */
  onRcpt?: (address: string) => void;
  /** Called with each message before the reply; throw to refuse it, wait to delay the reply. */
  onMessage?: (m: Captured) => Promise<void> | void;
}

export function smtpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

export async function startCaptureServer(opts: CaptureOptions = {}): Promise<CaptureServer> {
  const messages: Captured[] = [];
  let connections = 0;
  let open = 0;
  let maxOpen = 0;
  const options: SMTPServerOptions = {
    onConnect(_session, cb) {
      connections++;
      open++;
      maxOpen = Math.max(maxOpen, open);
      cb();
    },
    onClose() {
      open--;
    },
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: !opts.auth,
    allowInsecureAuth: true,
    logger: false,
    size: 50 * 1024 * 1024,
    closeTimeout: 200, // pooled clients keep connections open: don't wait 30 s for them on stop()
    onAuth(auth, _session, cb) {
      if (opts.auth && (auth.username !== opts.auth.user || auth.password !== opts.auth.pass))
        return cb(smtpError(535, '5.7.8 Authentication credentials invalid'));
      cb(null, { user: auth.username });
    },
    onRcptTo(address, _session, cb) {
      try {
        opts.onRcpt?.(address.address);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        const m: Captured = {
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          user: typeof session.user === 'string' ? session.user : undefined,
        };
        try {
          await opts.onMessage?.(m);
          messages.push(m);
          cb(null, '2.0.0 captured');
        } catch (e) {
          cb(e as Error);
        }
      });
    },
  };
  const server = new SMTPServer(options);
  server.on('error', () => {});
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port,
    messages,
    get connections() {
      return connections;
    },
    get open() {
      return open;
    },
    get maxOpen() {
      return maxOpen;
    },
    waitFor: (n, timeoutMs) =>
      until(`${n} captured messages`, () => messages.length >= n && messages, timeoutMs),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// ---------------------------------------------------------------------------------------------
// Postfix binaries

export function postfixTools(): { postfix: string; smtpSink: string } {
  const postfix = ['/usr/sbin/postfix'].find(existsSync);
  const smtpSink = ['/usr/sbin/smtp-sink', '/usr/lib/postfix/sbin/smtp-sink'].find(existsSync);
  if (!postfix || !smtpSink)
    throw new Error(
      "Postfix is not installed: these tests need Debian's postfix package (postfix, smtp-sink). " +
        'Install it with: DEBIAN_FRONTEND=noninteractive apt-get install -y postfix (.ci/run does).',
    );
  return { postfix, smtpSink };
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

function stopChild(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------------------------
// smtp-sink

export interface SinkMessage {
  mailFrom: string;
  rcptTo: string[];
  /** The message as received (smtp-sink's own X-* and Received lines removed). */
  raw: Buffer;
}

export interface SmtpSink {
  port: number;
  dir: string;
  /** Messages smtp-sink accepted, read from its dump files. */
  messages(): SinkMessage[];
  waitFor(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  stop(): Promise<void>;
}

/**
 * smtp-sink on a free port. Fault flags (smtp-sink(1)): `-r RCPT -b '451 …'` soft reject,
 * `-f RCPT -B '550 …'` hard reject, `-Q DATA` 421 and disconnect, `-q DATA` / `-q .` disconnect
 * without a reply. Accepted messages are dumped to files that messages() reads.
 */
export async function startSmtpSink(flags: string[] = []): Promise<SmtpSink> {
  const { smtpSink } = postfixTools();
  const dir = mkdtempSync(join(tmpdir(), 'parley-sink-'));
  chmodSync(dir, 0o777); // smtp-sink writes as the unprivileged user it switches to
  const port = await freePort();
  const args = [
    ...(isRoot() ? ['-u', 'postfix'] : []),
    '-d',
    `${dir}/m.`,
    ...flags,
    `127.0.0.1:${port}`,
    '100',
  ];
  const child = spawn(smtpSink, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  try {
    await Promise.race([
      waitForPort(port),
      new Promise((_, reject) =>
        child.once('exit', (code) => reject(new Error(`smtp-sink exited (${code}): ${stderr.trim()}`))),
      ),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const messages = (): SinkMessage[] =>
    readdirSync(dir)
      .filter((f) => f.startsWith('m.'))
      .sort()
      .map((f) => parseSinkDump(readFileSync(join(dir, f))))
      .filter((m): m is SinkMessage => m !== null);
  return {
    port,
    dir,
    messages,
    waitFor: (n, timeoutMs) =>
      until(
        `${n} messages at smtp-sink`,
        () => {
          const m = messages();
          return m.length >= n && m;
        },
        timeoutMs,
      ),
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** smtp-sink's dump: X-Client-*, X-Helo-Args, X-Mail-Args, X-Rcpt-Args, its Received line, then the message. */
function parseSinkDump(buf: Buffer): SinkMessage | null {
  const text = buf.toString('latin1');
  const mail = /^X-Mail-Args: <([^>]*)>/m.exec(text);
  if (!mail) return null; // still being written
  const rcptTo = [...text.matchAll(/^X-Rcpt-Args: <([^>]*)>/gm)].map((m) => m[1]);
  // Skip the X-* lines and smtp-sink's own Received field (the first one, with its folded lines).
  const lines = text.split(/(?<=\n)/);
  let i = 0;
  while (i < lines.length && /^X-[A-Za-z-]+: /.test(lines[i])) i++;
  if (lines[i]?.startsWith('Received: ') && /by smtp-sink/.test(lines.slice(i, i + 3).join(''))) {
    i++;
    while (i < lines.length && /^[ \t]/.test(lines[i])) i++;
  }
  const raw = Buffer.from(lines.slice(i).join(''), 'latin1');
  return {
    mailFrom: mail[1],
    rcptTo,
    raw: Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'),
  };
}

// ---------------------------------------------------------------------------------------------
// A private Postfix relay

export interface PostfixRelay {
  port: number;
  dir: string;
  /** Postfix's log (maillog_file). */
  log(): string;
  /** Asks Postfix to try its deferred mail now (`postfix flush`), as an operator would. */
  flush(): void;
  stop(): Promise<void>;
}

const MASTER_CF = (
  port: number,
) => `# A private instance for tests: nothing chrooted, only what a relay needs.
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

/**
 * Postfix accepting mail from 127.0.0.1 on a free port and relaying all of it (DSNs included) to
 * `relayTo` (an smtp-sink or a capture server playing the remote MX), except the domains in
 * `routes`, which go to their own server. Needs root, like any Postfix.
 */
export async function startPostfixRelay(
  relayTo: { port: number },
  routes: Record<string, { port: number }> = {},
): Promise<PostfixRelay> {
  const { postfix } = postfixTools();
  if (!isRoot()) throw new Error('a private Postfix instance needs root (the CI machine runs tests as root)');
  const dir = mkdtempSync(join(tmpdir(), 'parley-postfix-'));
  chmodSync(dir, 0o755);
  const conf = join(dir, 'conf');
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  for (const d of [conf, queue, data]) mkdirSync(d);
  const postfixUid = Number(execFileSync('id', ['-u', 'postfix']).toString().trim());
  chownSync(data, postfixUid, -1);
  const port = await freePort();
  writeFileSync(
    join(conf, 'main.cf'),
    `compatibility_level = 3.6
queue_directory = ${queue}
data_directory = ${data}
myhostname = relay.parley.test
mydomain = parley.test
myorigin = $mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:${relayTo.port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = ${dir}/postfix.log
maillog_file_prefixes = ${dir}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
biff = no
`,
  );
  const transportMap = Object.entries(routes)
    .map(([domain, r]) => `${domain}=smtp:[127.0.0.1]:${r.port}`)
    .join(', ');
  if (transportMap)
    writeFileSync(join(conf, 'main.cf'), `transport_maps = inline:{ ${transportMap} }\n`, { flag: 'a' });
  writeFileSync(join(conf, 'master.cf'), MASTER_CF(port));
  const run = (args: string[]) => execFileSync(postfix, ['-c', conf, ...args], { stdio: 'pipe' });
  try {
    run(['check']); // also creates the queue directories with their owners
  } catch (e) {
    throw new Error(`postfix check failed: ${(e as { stderr?: Buffer }).stderr?.toString() ?? e}`);
  }
  const child = spawn(postfix, ['-c', conf, 'start-fg'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const log = () =>
    existsSync(join(dir, 'postfix.log')) ? readFileSync(join(dir, 'postfix.log'), 'utf8') : '';
  try {
    await Promise.race([
      waitForPort(port, 15_000),
      new Promise((_, reject) =>
        child.once('exit', (code) =>
          reject(new Error(`postfix exited (${code}): ${stderr.trim()}\n${log()}`)),
        ),
      ),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    port,
    dir,
    log,
    flush() {
      run(['flush']);
    },
    async stop() {
      try {
        run(['stop']);
      } catch {
        // already stopped
      }
      await stopChild(child, 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
