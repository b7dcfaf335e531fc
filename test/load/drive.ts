import autocannon from 'autocannon';

// The insights benchmark's load generator (bench/tracking.bench.ts): autocannon keeping a number of
// connections busy, each sending its next request as soon as the last is answered, so the rate is
// what that benchmark measures. Every request carries a serial number of its own (in a header the
// server keeps), so the test can tell exactly which requests were answered: the run stops with
// requests in flight, which the server may have served without the answer being counted.

export interface LoadResult {
  /** Serial numbers of the requests answered 2xx or 3xx. */
  answered: Set<number>;
  /** Requests built (answered, failed or in flight at the end). */
  sent: number;
  s2xx: number;
  s3xx: number;
  /** 4xx and 5xx answers, and requests that got no answer before the end (errors, timeouts). */
  failed: number;
  errors: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  max: number;
}

export async function steadyLoad(o: {
  url: string;
  requests: autocannon.Request[];
  seconds: number;
  connections: number;
  headers?: Record<string, string>;
  /** The header carrying each request's serial number. */
  serialHeader: string;
}): Promise<LoadResult> {
  let serial = 0;
  const answered = new Set<number>();
  const requests = o.requests.map(
    (q): autocannon.Request => ({
      ...q,
      // one request in flight per connection: its context names the request being answered
      setupRequest: (req, context) => {
        (context as { serial: number }).serial = ++serial;
        req.headers = { ...req.headers, [o.serialHeader]: `load-${serial}` };
        return req;
      },
      onResponse: (status, _body, context) => {
        if (status >= 200 && status < 400) answered.add((context as { serial: number }).serial);
      },
    }),
  );
  // autocannon starts every connection at the first request of its list: with one list they would
  // all repeat its first few hundred. Each connection gets its own share of the requests instead.
  const per = Math.ceil(requests.length / o.connections);
  const share = (k: number) => requests.slice(k * per, (k + 1) * per);
  let next = 0;
  const r = await autocannon({
    url: o.url,
    connections: o.connections,
    duration: o.seconds,
    timeout: 30,
    headers: o.headers,
    requests: share(0),
    setupClient: (client) => client.setRequests(share(next++ % o.connections)),
  });
  return {
    answered,
    sent: serial,
    s2xx: r['2xx'],
    s3xx: r['3xx'],
    failed: r['4xx'] + r['5xx'],
    errors: r.errors,
    seconds: r.duration,
    rate: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
  };
}

/** The p-th percentile of sorted values (nearest rank). */
export const percentile = (sorted: ArrayLike<number>, p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : 0;
