// A private Dovecot (IMAP, POP3, LMTP) for a test file or a benchmark: its own config, base_dir,
// state_dir and maildirs in a temp folder, on free ports of 127.0.0.1 chosen at run time, started
// as a child process (`dovecot -F -c <conf>`, no systemd). Dovecot comes from Debian (.ci/run
// installs it); the process must run as root (mail is stored as the dovecot user).
// Mail is put in by LMTP (the real delivery path) or written straight into the maildir (fast
// enough for a 20,000-message benchmark mailbox); Dovecot assigns UIDs when it next scans.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
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
  throw new Error(`Dovecot does not listen on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

export interface DovecotUser {
  user: string;
  password: string;
}

export interface Dovecot {
  host: '127.0.0.1';
  imapPort: number;
  /** Implicit TLS with a self-signed certificate (clients that verify it must refuse it). */
  imapsPort: number;
  pop3Port: number;
  lmtpPort: number;
  dir: string;
  users: DovecotUser[];
  /** Delivers one message over LMTP to a user's INBOX. */
  deliver(to: string, raw: string | Buffer): Promise<void>;
  /** Writes messages straight into a user's maildir folder ('INBOX' or e.g. 'Sent'). */
  writeMaildir(
    user: string,
    folder: string,
    raws: (string | Buffer)[],
    opts?: { seen?: boolean; receivedAt?: Date },
  ): void;
  /** Gives a folder a new UIDVALIDITY (and so new UIDs), as a server does after rebuilding it. */
  resetUidValidity(user: string, folder: string): void;
  /** Runs doveadm against this instance (e.g. flag changes). */
  doveadm(args: string[]): string;
  stop(): Promise<void>;
}

/** A plain RFC 5322 message for tests. */
export function rawMail(m: {
  from: string;
  to: string;
  subject: string;
  text?: string;
  date?: Date;
  messageId?: string | null;
  inReplyTo?: string;
  references?: string;
  cc?: string;
}): string {
  const lines = [
    `From: ${m.from}`,
    `To: ${m.to}`,
    ...(m.cc ? [`Cc: ${m.cc}`] : []),
    `Subject: ${m.subject}`,
    `Date: ${(m.date ?? new Date()).toUTCString()}`,
    ...(m.messageId === null
      ? []
      : [`Message-ID: ${m.messageId ?? `<${randomBytes(8).toString('hex')}@test.local>`}`]),
    ...(m.inReplyTo ? [`In-Reply-To: ${m.inReplyTo}`] : []),
    ...(m.references ? [`References: ${m.references}`] : []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    m.text ?? 'Hello.',
    '',
  ];
  return lines.join('\r\n');
}

const dovecotIds = () => {
  const uid = Number(execFileSync('id', ['-u', 'dovecot']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'dovecot']).toString().trim());
  return { uid, gid };
};

function chownTree(path: string, uid: number, gid: number) {
  execFileSync('chown', ['-R', `${uid}:${gid}`, path]);
}

let fileSeq = 0;

/**
 * Writes messages straight into a user's maildir folder of the Dovecot in `dir` (INBOX, or e.g.
 * 'Sent'); usable from another process (the benchmark writes its mailbox from a child).
 */
export function writeMaildirFiles(
  dir: string,
  user: string,
  folder: string,
  raws: (string | Buffer)[],
  o: { seen?: boolean; receivedAt?: Date } = {},
) {
  // Maildir++: INBOX is the root, other folders are ".<name>" beside it.
  const root = join(dir, 'mail', user);
  const box = folder === 'INBOX' ? root : join(root, `.${folder.replaceAll('/', '.')}`);
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(box, d), { recursive: true });
  const now = Math.floor(Date.now() / 1000);
  for (const raw of raws) {
    const name = `${now}.P${process.pid}Q${++fileSeq}.parley-test`;
    // Files in cur/ carry their flags after ":2,"; new/ means unseen and not yet looked at.
    const file = o.seen ? join(box, 'cur', `${name}:2,S`) : join(box, 'new', name);
    writeFileSync(file, raw);
    // Dovecot takes a maildir file's mtime as the message's arrival (INTERNALDATE).
    if (o.receivedAt) utimesSync(file, o.receivedAt, o.receivedAt);
  }
  const { uid, gid } = dovecotIds();
  chownTree(root, uid, gid);
}

/** Starts a private Dovecot with the given users (default: alice, bob, carol; password "secret"). */
export async function startDovecot(opts: { users?: DovecotUser[] } = {}): Promise<Dovecot> {
  const users = opts.users ?? [
    { user: 'alice@test.local', password: 'secret' },
    { user: 'bob@test.local', password: 'secret' },
    { user: 'carol@test.local', password: 'secret' },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'parley-dovecot-'));
  chmodSync(dir, 0o755);
  for (const d of ['run', 'state', 'mail']) mkdirSync(join(dir, d));
  const { uid, gid } = dovecotIds();
  chownTree(join(dir, 'mail'), uid, gid);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const [imapPort, imapsPort, pop3Port, lmtpPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `protocols = imap pop3 lmtp
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = parley-test-${process.pid}-${randomBytes(3).toString('hex')}
log_path = ${dir}/dovecot.log
ssl = yes
ssl_cert = <${dir}/cert.pem
ssl_key = <${dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:${dir}/mail/%u
pop3_uidl_format = %08Xu%08Xv
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = create
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = create
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=${dir}/mail/%u allow_all_users=yes
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${imapPort}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${imapsPort}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${pop3Port}
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
`,
  );
  writeFileSync(join(dir, 'users'), `${users.map((u) => `${u.user}:{PLAIN}${u.password}`).join('\n')}\n`);
  const child: ChildProcess = spawn('dovecot', ['-F', '-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await Promise.all([waitForPort(imapPort), waitForPort(pop3Port), waitForPort(lmtpPort)]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const lmtp = nodemailer.createTransport({
    host: '127.0.0.1',
    port: lmtpPort,
    lmtp: true,
    secure: false,
    ignoreTLS: true,
  });
  const doveadm = (args: string[]) => execFileSync('doveadm', ['-c', conf, ...args]).toString();
  let uidValiditySeq = 0;
  return {
    host: '127.0.0.1',
    imapPort,
    imapsPort,
    pop3Port,
    lmtpPort,
    dir,
    users,
    async deliver(to, raw) {
      await lmtp.sendMail({ envelope: { from: 'sender@test.local', to: [to] }, raw });
    },
    writeMaildir: (user, folder, raws, o = {}) => writeMaildirFiles(dir, user, folder, raws, o),
    resetUidValidity(user, folder) {
      const next = Math.floor(Date.now() / 1000) + 1000 + ++uidValiditySeq;
      doveadm(['mailbox', 'update', '-u', user, '--uid-validity', String(next), folder]);
    },
    doveadm,
    async stop() {
      lmtp.close();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy in front of a port, which a test can cut: every open connection is destroyed (a
 * dropped connection mid-sync), and later connections pass again.
 */
export async function tcpProxy(targetPort: number) {
  const sockets = new Set<net.Socket>();
  let bytes = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** Bytes the server has sent through the proxy so far. */
    bytes: () => bytes,
    cut() {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
