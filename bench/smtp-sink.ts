// An SMTP server that counts and discards what it receives, run as a child process by benchmarks so
// that its CPU is not charged to the sender. Tells its parent its port, answers 'stats' with
// { count, bytes, cpuMs, firstAt } (firstAt: when the first message arrived), exits on 'stop'.
import { SMTPServer } from 'smtp-server';

let count = 0;
let bytes = 0;
let firstAt = 0;
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  size: 50 * 1024 * 1024,
  onData(stream, _session, cb) {
    stream.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    stream.on('end', () => {
      if (count++ === 0) firstAt = Date.now();
      cb();
    });
  },
});
server.on('error', () => {});
server.listen(0, '127.0.0.1', () => {
  const a = server.server.address();
  process.send?.({ port: typeof a === 'object' && a ? a.port : 0 });
});
process.on('message', (m) => {
  if (m === 'stats') {
    const u = process.cpuUsage();
    process.send?.({ count, bytes, cpuMs: (u.user + u.system) / 1000, firstAt });
  } else if (m === 'stop') server.close(() => process.exit(0));
});
