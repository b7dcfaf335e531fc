// `npm run bench:tracking`: the open pixel and click redirects under load (issue 5, "Measured").
// A real `parley serve` (its own process, over a throwaway embedded PostgreSQL holding an org and
// sent messages) and a bare node:http server answering the same GIF and recording nothing are each
// loaded by autocannon (in this process) with the same mix of pixel and click requests, taking turns
// for a bounded time. Every hit Parley answered must then be in tracking_hits. Last line:
// `tracking: <N> req/s, p99 <P> ms, <R>x bare`.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import autocannon from 'autocannon';
import { sql } from 'kysely';
import { createOrg } from '../src/crm/index.ts';
import { PIXEL_GIF, PIXEL_HEADERS } from '../src/http/routes/tracking.routes.ts';
import { messageTrackingTokens } from '../src/tracking/tokens.ts';
import { benchDatabase, median } from './support.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
// Every URL is a different message, and there are about as many as the run's requests: the hits
// of a mass email's open burst, most of them a message's first (BENCH_MESSAGES to change).
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 100_000);
const CLICK_SHARE = Number(process.env.BENCH_CLICK_SHARE ?? 0.2);
const LINKS = [
  'https://example.com/pricing',
  'https://example.com/docs?x=1',
  'https://blog.example.org/post',
];
const UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36';

const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((r) => c.once('exit', () => r()));

/** Fields of /proc/<pid>/stat after the command name (0 = state, 1 = ppid, 11/12 = utime/stime). */
function procStat(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}
/** User + system CPU time of a process so far, in ms (Linux /proc, in 1/100 s; 0 once it is gone). */
function cpuMs(pid: number): number {
  const f = procStat(pid);
  return f ? (Number(f[11]) + Number(f[12])) * 10 : 0;
}
/**
 * All of a local PostgreSQL's CPU so far, in ms: the postmaster, its live children, and the
 * children it has reaped (a pool's backends come and go, so a list of backends taken once misses
 * some). 0 for a server on another machine.
 */
function postgresCpuMs(postmaster: number): number {
  const f = postmaster ? procStat(postmaster) : null;
  if (!f) return 0;
  let ms = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 10;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const c = procStat(pid);
    if (c && Number(c[1]) === postmaster) ms += (Number(c[11]) + Number(c[12])) * 10;
  }
  return ms;
}

const children: ChildProcess[] = [];
/**
 * Starts a server process listening on a port of its own choosing, and answers its URL (read from
 * its output; everything it prints goes to our stderr, so the last line of stdout stays ours).
 */
function startChild(args: string[], env: Record<string, string>): Promise<{ url: string; pid: number }> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  child.stdout?.pipe(process.stderr);
  return new Promise((ok, fail) => {
    let seen = '';
    child.stdout?.on('data', (d: Buffer) => {
      seen += d.toString();
      const m = /(?:ready at|listening on) http:\/\/[^:/]+:(\d+)/.exec(seen);
      if (m) ok({ url: `http://127.0.0.1:${m[1]}`, pid: child.pid as number });
    });
    child.once('exit', (code) => fail(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

/** The bare comparison: node:http answering every request with the same GIF and headers. */
const BARE = `
const http = require('node:http');
const gif = Buffer.from(${JSON.stringify(PIXEL_GIF.toString('base64'))}, 'base64');
const headers = ${JSON.stringify(PIXEL_HEADERS)};
const srv = http.createServer((req, res) => { res.writeHead(200, headers); res.end(gif); });
srv.listen(0, '127.0.0.1', () => console.log('listening on http://127.0.0.1:' + srv.address().port));
process.on('SIGTERM', () => process.exit(0));`;

/** Requests sent to each server so far. */
const sent = new Map<string, number>();
/**
 * Loads a server with the URLs for `seconds`. autocannon starts each connection at the first URL of
 * its list (and builds every request of it per connection), so each connection gets its own share
 * of the URLs, and each run goes on where that server's previous one stopped.
 */
function load(url: string, requests: autocannon.Request[], seconds: number) {
  const per = Math.ceil(requests.length / CONNECTIONS);
  const done = sent.get(url) ?? 0;
  const from = Math.floor(done / CONNECTIONS) % per;
  const share = (k: number) => {
    const own = requests.slice(k * per, (k + 1) * per);
    return own.slice(from).concat(own.slice(0, from));
  };
  let next = 0;
  const run = autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    headers: { 'user-agent': UA },
    requests: share(0),
    setupClient(client) {
      client.setRequests(share(next++ % CONNECTIONS));
    },
    // BENCH_RATE=N holds the load at N req/s (CPU per request at equal load, for profiling)
    ...(process.env.BENCH_RATE ? { overallRate: Number(process.env.BENCH_RATE) } : {}),
  });
  return run.then((r) => {
    sent.set(url, done + r.requests.total);
    return r;
  });
}

/** Several autocannon runs against one server, added up. p99 is the worst run's (a conservative bound). */
interface Sum {
  requests: number;
  seconds: number;
  answered: number;
  redirects: number;
  failed: number;
  errors: number;
  timeouts: number;
  p50s: number[];
  p99: number;
}
const sum = (): Sum => ({
  requests: 0,
  seconds: 0,
  answered: 0,
  redirects: 0,
  failed: 0,
  errors: 0,
  timeouts: 0,
  p50s: [],
  p99: 0,
});
async function measure(s: Sum, run: Promise<autocannon.Result>) {
  const t = performance.now();
  const r = await run;
  s.seconds += (performance.now() - t) / 1000;
  s.requests += r.requests.total;
  s.answered += r['2xx'] + r['3xx'];
  s.redirects += r['3xx'];
  s.failed += r['4xx'] + r['5xx'];
  s.errors += r.errors;
  s.timeouts += r.timeouts;
  s.p50s.push(r.latency.p50);
  s.p99 = Math.max(s.p99, r.latency.p99);
}
const rate = (s: Sum) => Math.round(s.requests / s.seconds);

const db = await benchDatabase('tracking');
const countHits = async () =>
  (await sql<{ n: number }>`SELECT count(*)::int AS n FROM tracking_hits`.execute(db.deps.db)).rows[0].n;
try {
  const { deps } = db;
  const secret = deps.config.secret as string;
  const org = await createOrg(deps, {
    name: 'Bench',
    adminEmail: 'admin@bench.example',
    adminName: 'Admin',
    adminPassword: 'bench-password-123',
  });
  const html = `<p>Hello</p>${LINKS.map((l) => `<a href="${l}">x</a>`).join(' ')}`;
  const ids = (
    await sql<{ id: string }>`
      INSERT INTO messages (org_id, kind, from_address, to_address, subject, html, text, message_id_header,
        transport, status, tracked, sent_at, expires_at)
      SELECT ${org.org.id}, 'individual', 'sales@bench.example', 'r' || g || '@remote.example', 'Hello',
        ${html}, 'Hello', '<bench.' || g || '@bench.example>', 'outbox', 'sent', true,
        now() - interval '1 day', now() + interval '1 day'
      FROM generate_series(1, ${MESSAGES}) g RETURNING id`.execute(deps.db)
  ).rows.map((r) => r.id);
  // A fixed mix: every URL a different message, one in five a click on one of its links.
  const requests: autocannon.Request[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const tok = messageTrackingTokens(secret, id, LINKS.length);
    const isClick = (i * 0.618033988749895) % 1 < CLICK_SHARE;
    requests.push({
      method: 'GET',
      path: isClick ? `/t/c/${tok.clicks[i % LINKS.length]}` : `/t/o/${tok.open}.gif`,
    });
  }

  // Parley: the real `parley serve` over this database, on a port of its choosing.
  // BENCH_CPU_PROF=DIR writes a V8 CPU profile of the Parley server there (open it in Chrome DevTools).
  const prof = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
    : [];
  const parleyServer = await startChild([...prof, 'bin/parley.mjs', 'serve'], {
    PARLEY_DATABASE_URL: db.url,
    PARLEY_SECRET: secret,
    PARLEY_PORT: '0',
    PARLEY_LOG_LEVEL: 'warn',
  });
  const bareServer = await startChild(['-e', BARE], {});
  const [parleyUrl, bareUrl] = [parleyServer.url, bareServer.url];

  // Warm-up (JIT, the message cache), then the measured turns, bare first in each.
  await load(bareUrl, requests, 2);
  await load(parleyUrl, requests, 3);
  // the warm-up's hits, once all written
  let warmHits = -1;
  for (let n = await countHits(); n !== warmHits; n = await countHits()) {
    warmHits = n;
    await new Promise((r) => setTimeout(r, 500));
  }
  // CPU time per request of each server and of PostgreSQL: the figure that holds on a busy machine.
  // PostgreSQL's processes, when it runs here (the pid of a remote backend names some other process)
  const isPostgres = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
    } catch {
      return false;
    }
  };
  const backend = (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(deps.db)).rows[0].pid;
  const parent = isPostgres(backend) ? Number(procStat(backend)?.[1]) : 0;
  const postmaster = isPostgres(parent) ? parent : 0;
  const cpu = () => ({
    parley: cpuMs(parleyServer.pid),
    bare: cpuMs(bareServer.pid),
    pg: postgresCpuMs(postmaster),
  });
  // The machine's speed drifts by tens of percent over a minute here (the bare server alone gave
  // 15,000–31,000 req/s in runs minutes apart), so the two servers take turns, ROUNDS times, and
  // each figure sums its turns: a slow spell weighs on both sides of the ratio alike.
  const b = sum();
  const p = sum();
  const cpuBare = { bare: 0, pg: 0 };
  const cpuParley = { parley: 0, pg: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const c0 = cpu();
    await measure(b, load(bareUrl, requests, SECONDS / ROUNDS));
    const c1 = cpu();
    await measure(p, load(parleyUrl, requests, SECONDS / ROUNDS));
    const c2 = cpu();
    cpuBare.bare += c1.bare - c0.bare;
    cpuBare.pg += c1.pg - c0.pg;
    cpuParley.parley += c2.parley - c1.parley;
    cpuParley.pg += c2.pg - c1.pg;
  }
  // Every hit Parley answered must reach the database (within a second or so of the last).
  const answered = p.answered;
  const t0 = Date.now();
  let recorded = (await countHits()) - warmHits;
  while (recorded < answered && Date.now() - t0 < 10_000) {
    await new Promise((r) => setTimeout(r, 100));
    recorded = (await countHits()) - warmHits;
  }
  const settledMs = Date.now() - t0;
  // CPU from /proc is counted in 10 ms ticks: a fair average over a run, not an exact split.
  const perReq = (ms: number, r: Sum) => `${Math.round((1000 * ms) / r.requests)} µs`;

  // Connection errors and timeouts are the load generator's (they show on the bare server too when
  // the machine is overloaded): reported, not counted as answers.
  const errors = `errors ${p.errors} (timeouts ${p.timeouts}); bare ${b.errors} (${b.timeouts})`;
  console.log(
    `bare node:http: ${rate(b)} req/s, p99 ${b.p99} ms` +
      ` | parley: ${rate(p)} req/s, p50 ${median(p.p50s)} ms, p99 ${p.p99} ms,` +
      ` ${answered} answered, ${p.failed} 4xx/5xx, ${recorded} recorded (all within ${settledMs} ms after the run); ${errors}`,
  );
  console.log(
    `CPU per request: parley server ${perReq(cpuParley.parley, p)} + PostgreSQL ${perReq(cpuParley.pg, p)}` +
      ` (while bare ran: PostgreSQL ${perReq(cpuBare.pg, b)}); bare server ${perReq(cpuBare.bare, b)}`,
  );
  const hit = (
    await sql<{ n: number }>`SELECT count(DISTINCT message_id)::int AS n FROM tracking_hits`.execute(deps.db)
  ).rows[0].n;
  console.log(
    `conditions: ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(
        ' ',
      )}, ${CONNECTIONS} connections, ${SECONDS} s each in ${ROUNDS} turns, ${Math.round(CLICK_SHARE * 100)}% clicks; ${sent.get(parleyUrl)} requests to Parley hit ${hit} of ${MESSAGES} messages; autocannon in the same machine`,
  );
  if (p.failed > 0) throw new Error(`${p.failed} requests answered 4xx/5xx`);
  if (b.redirects > 0 || p.redirects === 0) throw new Error('the bare and Parley servers were mixed up');
  if (recorded < answered) throw new Error(`only ${recorded} of ${answered} answered hits were recorded`);
  console.log(`tracking: ${rate(p)} req/s, p99 ${p.p99} ms, ${(rate(p) / rate(b)).toFixed(2)}x bare`);
} finally {
  for (const c of children) {
    c.kill('SIGTERM');
    await exited(c);
  }
  await db.close();
}
