import { isbot } from 'isbot';

// Human or machine, for every open and click (issue 5, "Insights you can trust"). The rules read
// only what is stored with each hit, so they can be re-run over old hits when they change. They
// judge a message's hits together: a burst of clicks on every link, or a click on the hidden trap
// link, condemns the whole burst. Each rule is a small function; the first that fires gives the
// verdict and its reason. Image proxies that fetch when a person opens the mail (Gmail, Yahoo) count
// as human; those that fetch on delivery (Apple Mail Privacy Protection) and link scanners do not.

export interface Hit {
  at: Date;
  kind: 'open' | 'click';
  link?: number;
  method: string;
  ip: string;
  userAgent: string;
  headers: Record<string, string>;
}

export interface MessageInfo {
  sentAt: Date;
  /** Tracked links in the message (for "every link at once"). */
  links?: number;
  /** Index of the hidden trap link, if the message has one. */
  trapLink?: number;
}

export interface Verdict {
  verdict: 'human' | 'machine';
  reason: string;
}

export const CLICK_TOO_SOON_MS = 10_000;
export const BURST_MS = 5_000;

/** IPv4 / IPv6 (and IPv4-mapped IPv6) CIDR matching: a dozen lines, so no dependency for it. */
function toBytes(ip: string): number[] | null {
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(ip.trim());
  if (v4) return v4.slice(1).map(Number);
  if (!ip.includes(':')) return null;
  const [a, b = ''] = ip.trim().toLowerCase().split('::');
  const left = a ? a.split(':') : [];
  const right = b ? b.split(':') : [];
  const groups = [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  if (groups.length !== 8) return null;
  return groups.flatMap((g) => {
    const n = Number.parseInt(g || '0', 16);
    return [(n >> 8) & 255, n & 255];
  });
}

export function inCidr(ip: string, cidr: string): boolean {
  const [net, bitsStr] = cidr.split('/');
  const a = toBytes(ip);
  const b = toBytes(net);
  if (!a || !b || a.length !== b.length) return false;
  let bits = Number(bitsStr ?? a.length * 8);
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 255 : (255 << (8 - bits)) & 255;
    if ((a[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}

const APPLE = ['17.0.0.0/8'];
const SCANNER_NETWORKS: Record<string, string[]> = {
  microsoft: ['40.92.0.0/15', '40.107.0.0/16', '52.100.0.0/14', '104.47.0.0/17', '2a01:111:f400::/48'],
  mimecast: ['205.139.110.0/24', '207.211.30.0/24', '216.205.24.0/24', '91.220.42.0/24', '195.130.217.0/24'],
  proofpoint: ['148.163.128.0/19', '67.231.144.0/20', '205.220.160.0/19'],
  barracuda: ['64.235.144.0/20', '209.222.80.0/21'],
};
const SCANNER_AGENTS: [string, RegExp][] = [
  [
    'microsoft',
    /safelinks|defender|microsoft office existence discovery|ms-office.*discovery|outlook-ios-linkpreview/i,
  ],
  ['mimecast', /mimecast/i],
  ['proofpoint', /proofpoint|urldefense/i],
  ['barracuda', /barracuda/i],
  ['cisco', /ironport|cisco/i],
  ['trendmicro', /trend ?micro/i],
  ['sophos', /sophos/i],
  ['symantec', /symantec|broadcom|messagelabs/i],
  ['forcepoint', /forcepoint|websense/i],
  ['fireeye', /fireeye|trellix/i],
  ['bitdefender', /bitdefender/i],
  ['google_safebrowsing', /google-safety|safebrowsing/i],
  [
    'generic',
    /python-requests|python-urllib|curl\/|wget\/|go-http-client|okhttp|java\/|libwww|headlesschrome|phantomjs|slackbot|facebookexternalhit|twitterbot|linkedinbot|whatsapp|telegrambot|discordbot|skypeuripreview|preview/i,
  ],
];
const HUMAN_PROXIES: [string, RegExp][] = [
  ['gmail', /googleimageproxy|ggpht\.com/i],
  ['yahoo', /yahoomailproxy/i],
];

// The agent and network facts cost ≈ 40 µs a hit (isbot's pattern, a dozen CIDR tests); hits repeat
// agents and addresses, so each is worked out once (bounded caches, cleared when full).
function memo<T>(max: number, fn: (k: string) => T): (k: string) => T {
  const m = new Map<string, T>();
  return (k) => {
    let v = m.get(k);
    if (v === undefined) {
      v = fn(k);
      if (m.size >= max) m.clear();
      m.set(k, v);
    }
    return v;
  };
}
const scannerAgent = memo(20_000, (ua): string | null => {
  for (const [name, re] of SCANNER_AGENTS) if (re.test(ua)) return name;
  return null;
});
const scannerNetwork = memo(50_000, (ip): string | null => {
  for (const [name, nets] of Object.entries(SCANNER_NETWORKS))
    if (nets.some((n) => inCidr(ip, n))) return name;
  return null;
});
const appleNetwork = memo(50_000, (ip) => APPLE.some((n) => inCidr(ip, n)));
const humanProxy = memo(20_000, (ua): string | null => {
  for (const [name, re] of HUMAN_PROXIES) if (re.test(ua)) return name;
  return null;
});
const botAgent = memo(20_000, (ua) => isbot(ua));

const header = (h: Hit, name: string) => {
  for (const [k, v] of Object.entries(h.headers ?? {})) if (k.toLowerCase() === name) return String(v);
  return '';
};

type Rule = (h: Hit, all: Hit[], m: MessageInfo) => string | null;

// Rules on a hit alone, in order.
const RULES: Rule[] = [
  (h) => (h.method.toUpperCase() === 'HEAD' ? 'head_request' : null),
  (h) =>
    /prefetch|prerender/i.test(
      header(h, 'sec-purpose') + header(h, 'purpose') + header(h, 'x-moz') + header(h, 'sec-fetch-purpose'),
    )
      ? 'prefetch'
      : null,
  (h, _all, m) =>
    h.kind === 'click' && m.trapLink !== undefined && h.link === m.trapLink ? 'trap_link' : null,
  (h) => {
    const name = scannerAgent(h.userAgent);
    return name ? `scanner_agent:${name}` : null;
  },
  (h) => {
    const name = scannerNetwork(h.ip);
    return name ? `scanner_network:${name}` : null;
  },
  // Apple Mail Privacy Protection: fetched from Apple's network with a bare agent, on delivery.
  (h) => (h.kind === 'open' && appleNetwork(h.ip) ? 'apple_mpp' : null),
  (h, _all, m) =>
    h.kind === 'click' && h.at.getTime() - m.sentAt.getTime() < CLICK_TOO_SOON_MS ? 'click_too_soon' : null,
];

/** Bursts: every tracked link clicked within BURST_MS, or a trap-link click, condemn the burst. */
function burstVerdicts(hits: Hit[], m: MessageInfo): Map<Hit, string> {
  const out = new Map<Hit, string>();
  const clicks = hits.filter((h) => h.kind === 'click').sort((a, b) => a.at.getTime() - b.at.getTime());
  for (let i = 0; i < clicks.length; i++) {
    const burst = clicks.filter((c) => Math.abs(c.at.getTime() - clicks[i].at.getTime()) <= BURST_MS);
    const links = new Set(burst.map((c) => c.link));
    if (m.trapLink !== undefined && links.has(m.trapLink)) for (const c of burst) out.set(c, 'trap_link');
    else if (m.links && m.links > 1 && links.size >= m.links)
      for (const c of burst) out.set(c, 'all_links_at_once');
  }
  return out;
}

export function classifyHits(m: MessageInfo, hits: Hit[]): Verdict[] {
  const bursts = burstVerdicts(hits, m);
  return hits.map((h) => {
    for (const rule of RULES) {
      const reason = rule(h, hits, m);
      if (reason) return { verdict: 'machine', reason };
    }
    const burst = bursts.get(h);
    if (burst) return { verdict: 'machine', reason: burst };
    const proxy = humanProxy(h.userAgent);
    if (proxy) return { verdict: 'human', reason: `image_proxy:${proxy}` };
    if (h.userAgent && botAgent(h.userAgent)) return { verdict: 'machine', reason: 'isbot' };
    return { verdict: 'human', reason: 'human' };
  });
}

/** One line of `parley insights classify` input. */
interface HitLine {
  message: string;
  sent_at: string;
  at: string;
  kind: 'open' | 'click';
  link?: number;
  method?: string;
  ip?: string;
  user_agent?: string;
  headers?: Record<string, string>;
  links?: number;
  trap_link?: number;
}

/**
 * Judges JSON lines of hits, each message's hits together, and answers one line per input line in
 * the same order. A line that cannot be read gets `invalid_input` (and counts as human, so a bad
 * line never hides a person). Without a link count, a message's links are those ever clicked.
 */
export function classifyHitLines(lines: string[]): string[] {
  const parsed: (HitLine | Error)[] = lines.map((l) => {
    try {
      const o = JSON.parse(l) as HitLine;
      if (!o || typeof o.message !== 'string' || (o.kind !== 'open' && o.kind !== 'click'))
        throw new Error('needs message and kind');
      if (Number.isNaN(new Date(o.at).getTime()) || Number.isNaN(new Date(o.sent_at).getTime()))
        throw new Error('needs at and sent_at');
      return o;
    } catch (e) {
      return e as Error;
    }
  });
  const groups = new Map<string, number[]>();
  parsed.forEach((p, i) => {
    if (!(p instanceof Error)) groups.set(p.message, [...(groups.get(p.message) ?? []), i]);
  });
  const out: string[] = parsed.map((p) =>
    p instanceof Error ? JSON.stringify({ verdict: 'human', reason: 'invalid_input', error: p.message }) : '',
  );
  for (const idx of groups.values()) {
    const rows = idx.map((i) => parsed[i] as HitLine);
    const hits: Hit[] = rows.map((r) => ({
      at: new Date(r.at),
      kind: r.kind,
      link: typeof r.link === 'number' ? r.link : undefined,
      method: r.method ?? 'GET',
      ip: r.ip ?? '',
      userAgent: r.user_agent ?? '',
      headers: r.headers ?? {},
    }));
    const clicked = new Set(hits.filter((h) => h.kind === 'click').map((h) => h.link));
    const info: MessageInfo = {
      sentAt: new Date(rows[0].sent_at),
      links: rows.find((r) => typeof r.links === 'number')?.links ?? clicked.size,
      trapLink: rows.find((r) => typeof r.trap_link === 'number')?.trap_link,
    };
    classifyHits(info, hits).forEach((v, k) => {
      out[idx[k]] = JSON.stringify(v);
    });
  }
  return out;
}
