// Per-org SMTP relay settings (F3.8). One relay per org; without one, messages go to the local
// outbox. The password is stored encrypted (secrets.ts) and never leaves the server: views say
// hasPassword instead.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { type Actor, requireAdmin } from '../crm/index.ts';
import type { DomainLimit, RelaySecurity } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { invalid } from '../errors.ts';
import { assertHeaderSafe, normaliseDomain } from './address.ts';
import { decryptSecret, encryptSecret } from './secrets.ts';

export interface RelayInput {
  host: string;
  port: number;
  security: RelaySecurity;
  username?: string | null;
  /** A new password; null removes it; absent keeps the stored one. */
  password?: string | null;
  maxConnections?: number;
  maxPerSecond?: number;
  /** Per receiving domain, e.g. {"gmail.com": {"connections": 2, "perSecond": 5}}. */
  domainLimits?: Record<string, DomainLimit>;
  /** The domain of Message-IDs and VERP return paths (bounces come back there). */
  sendingDomain?: string | null;
}

/** What the API shows: everything but the password. */
export interface RelayView {
  host: string;
  port: number;
  security: RelaySecurity;
  username: string | null;
  hasPassword: boolean;
  maxConnections: number;
  maxPerSecond: number;
  domainLimits: Record<string, DomainLimit>;
  sendingDomain: string | null;
  updatedAt: string;
}

/** What a transport needs; the password is decrypted only when a transport is built. */
export interface RelaySettings {
  orgId: string;
  host: string;
  port: number;
  security: RelaySecurity;
  username: string | null;
  passwordEnc: string | null;
  maxConnections: number;
  maxPerSecond: number;
  domainLimits: Record<string, DomainLimit>;
  sendingDomain: string | null;
  /** Changes whenever any setting changes: a cached transport with another version is rebuilt. */
  version: string;
}

const MAX_DOMAIN_LIMITS = 200;
const HOST = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export const passwordContext = (orgId: string) => `smtp_relays.password:${orgId}`;

function checkHost(host: string): string {
  if (typeof host !== 'string') throw invalid('host must be text', [{ path: 'host', message: 'required' }]);
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (isIP(h)) return h;
  if (!HOST.test(h))
    throw invalid(`"${host.slice(0, 80)}" is not a valid host name or IP address`, [
      { path: 'host', message: 'not a host name or IP address' },
    ]);
  return h;
}

function checkInt(field: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max)
    throw invalid(`${field} must be a whole number from ${min} to ${max}`, [
      { path: field, message: `${min}–${max}` },
    ]);
  return v;
}

function checkRate(field: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0.01 || v > 100_000)
    throw invalid(`${field} must be a number from 0.01 to 100000 (messages per second)`, [
      { path: field, message: '0.01–100000' },
    ]);
  return v;
}

function checkDomainLimits(input: Record<string, DomainLimit>): Record<string, DomainLimit> {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalid('domainLimits must be an object keyed by domain');
  const entries = Object.entries(input);
  if (entries.length > MAX_DOMAIN_LIMITS)
    throw invalid(`at most ${MAX_DOMAIN_LIMITS} per-domain limits`, [
      { path: 'domainLimits', message: 'too many' },
    ]);
  const out: Record<string, DomainLimit> = {};
  for (const [domain, limit] of entries) {
    const d = normaliseDomain(domain, `domainLimits.${domain}`);
    const l: DomainLimit = {};
    if (limit?.connections != null)
      l.connections = checkInt(`domainLimits.${d}.connections`, limit.connections, 1, 100);
    if (limit?.perSecond != null) l.perSecond = checkRate(`domainLimits.${d}.perSecond`, limit.perSecond);
    if (l.connections == null && l.perSecond == null)
      throw invalid(`domainLimits.${d} needs connections and/or perSecond`, [
        { path: `domainLimits.${d}`, message: 'empty' },
      ]);
    out[d] = l;
  }
  return out;
}

function settingsVersion(row: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(row)).digest('base64url').slice(0, 22);
}

type RelayRow = {
  org_id: string;
  host: string;
  port: number;
  security: RelaySecurity;
  username: string | null;
  password_enc: string | null;
  max_connections: number;
  max_per_second: string;
  domain_limits: Record<string, DomainLimit>;
  sending_domain: string | null;
  updated_at: Date;
};

function toView(r: RelayRow): RelayView {
  return {
    host: r.host,
    port: r.port,
    security: r.security,
    username: r.username,
    hasPassword: r.password_enc != null,
    maxConnections: r.max_connections,
    maxPerSecond: Number(r.max_per_second),
    domainLimits: r.domain_limits,
    sendingDomain: r.sending_domain,
    updatedAt: r.updated_at.toISOString(),
  };
}

function toSettings(r: RelayRow): RelaySettings {
  const { updated_at: _ignored, ...content } = r;
  return {
    orgId: r.org_id,
    host: r.host,
    port: r.port,
    security: r.security,
    username: r.username,
    passwordEnc: r.password_enc,
    maxConnections: r.max_connections,
    maxPerSecond: Number(r.max_per_second),
    domainLimits: r.domain_limits,
    sendingDomain: r.sending_domain,
    version: settingsVersion(content),
  };
}

export async function getRelay(deps: Deps, actor: Actor): Promise<RelayView | null> {
  requireAdmin(actor);
  const row = await deps.db
    .selectFrom('smtp_relays')
    .selectAll()
    .where('org_id', '=', actor.orgId)
    .executeTakeFirst();
  return row ? toView(row as RelayRow) : null;
}

/** Creates or replaces the org's relay settings. */
export async function saveRelay(deps: Deps, actor: Actor, input: RelayInput): Promise<RelayView> {
  requireAdmin(actor);
  const host = checkHost(input.host);
  const port = checkInt('port', input.port, 1, 65535);
  if (!['none', 'starttls', 'tls'].includes(input.security))
    throw invalid('security must be none, starttls or tls', [
      { path: 'security', message: 'none|starttls|tls' },
    ]);
  const username = input.username?.trim() ? assertHeaderSafe('username', input.username.trim()) : null;
  if (username && username.length > 320) throw invalid('username is too long (320 characters at most)');
  if (input.password != null) {
    if (typeof input.password !== 'string' || input.password.length === 0 || input.password.length > 1000)
      throw invalid('password must be 1 to 1000 characters', [
        { path: 'password', message: '1–1000 characters' },
      ]);
    // AUTH PLAIN/LOGIN carry the password in one base64 line: a line break could never work.
    assertHeaderSafe('password', input.password);
  }
  const maxConnections = checkInt('maxConnections', input.maxConnections ?? 5, 1, 100);
  const maxPerSecond = checkRate('maxPerSecond', input.maxPerSecond ?? 50);
  const domainLimits = checkDomainLimits(input.domainLimits ?? {});
  const sendingDomain = input.sendingDomain ? normaliseDomain(input.sendingDomain, 'sendingDomain') : null;
  const now = deps.clock.now();
  const values = {
    host,
    port,
    security: input.security,
    username,
    max_connections: maxConnections,
    max_per_second: maxPerSecond,
    domain_limits: JSON.stringify(domainLimits),
    sending_domain: sendingDomain,
    updated_at: now,
    ...(input.password === undefined
      ? {}
      : {
          password_enc:
            input.password === null
              ? null
              : encryptSecret(deps.config, input.password, passwordContext(actor.orgId)),
        }),
  };
  const row = await deps.db
    .insertInto('smtp_relays')
    .values({ org_id: actor.orgId, password_enc: null, ...values })
    .onConflict((oc) => oc.column('org_id').doUpdateSet(values))
    .returningAll()
    .executeTakeFirstOrThrow();
  return toView(row as RelayRow);
}

/** Removes the relay: the org's messages go to the local outbox from now on. */
export async function deleteRelay(deps: Deps, actor: Actor): Promise<boolean> {
  requireAdmin(actor);
  const r = await deps.db.deleteFrom('smtp_relays').where('org_id', '=', actor.orgId).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** The relays of these orgs (absent: no relay, use the outbox). For the delivery worker. */
export async function loadRelays(deps: Deps, orgIds: readonly string[]): Promise<Map<string, RelaySettings>> {
  const out = new Map<string, RelaySettings>();
  if (!orgIds.length) return out;
  const rows = await deps.db
    .selectFrom('smtp_relays')
    .selectAll()
    .where('org_id', 'in', [...orgIds])
    .execute();
  for (const r of rows) out.set(r.org_id, toSettings(r as RelayRow));
  return out;
}

/** The relay password in clear, for building a transport only. */
export function relayPassword(deps: Pick<Deps, 'config'>, relay: RelaySettings): string | null {
  return relay.passwordEnc
    ? decryptSecret(deps.config, relay.passwordEnc, passwordContext(relay.orgId))
    : null;
}
