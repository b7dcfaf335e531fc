// Where webhooks may go. Without the operator's PARLEY_WEBHOOKS_ALLOW_PRIVATE, only https URLs to
// public addresses: an admin must not be able to make the server call its own network (SSRF). The
// check runs when the URL is saved and again on every connection (DNS may change in between), and
// the connection goes to the very address that was checked.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { invalid } from '../errors.ts';

const blocked = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  blocked.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  blocked.addSubnet(net, bits, 'ipv6');

/** True for loopback, private, link-local, multicast and reserved addresses (IPv4-mapped too). */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1], 'ipv4');
    return blocked.check(address, 'ipv6');
  }
  return true; // not an address at all: never connect
}

/** Parses and checks a webhook URL as typed by an admin; returns its normalised form. */
export function checkWebhookUrl(raw: string, allowPrivate: boolean): URL {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw invalid('The URL is not valid', [{ path: 'url', message: 'invalid' }]);
  }
  if (u.protocol !== 'https:' && !(allowPrivate && u.protocol === 'http:'))
    throw invalid('Webhook URLs must use https', [{ path: 'url', message: 'https only' }]);
  if (u.username || u.password)
    throw invalid('Put no user name or password in the URL', [{ path: 'url', message: 'credentials' }]);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (
    !allowPrivate &&
    (host === 'localhost' || host.endsWith('.localhost') || (isIP(host) && isPrivateAddress(host)))
  )
    throw invalid('Webhook URLs cannot point at private or loopback addresses', [
      { path: 'url', message: 'private address' },
    ]);
  return u;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A `lookup` for http.request that refuses private addresses unless allowed. */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: { all?: boolean; family?: number | string }, cb: LookupCallback) => {
    dnsLookup(hostname, { all: true, family: Number(options.family) || 0 }, (err, addresses) => {
      if (err) return cb(err, []);
      const ok = allowPrivate ? addresses : addresses.filter((a) => !isPrivateAddress(a.address));
      if (!ok.length) {
        const e: NodeJS.ErrnoException = new Error(`${hostname} resolves only to private addresses`);
        e.code = 'EPRIVATE';
        return cb(e, []);
      }
      if (options.all) cb(null, ok);
      else cb(null, ok[0].address, ok[0].family);
    });
  };
}
