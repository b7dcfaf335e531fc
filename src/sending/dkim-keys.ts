// The org's DKIM keys (F3.8): generated here or uploaded, the private key stored encrypted and never
// returned; the admin publishes the TXT record shown. Delivery signs with the keys aligned with the
// From domain (dkim.ts does the signing).
import { createHash, createPublicKey } from 'node:crypto';
import { type Actor, requireAdmin } from '../crm/index.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { normaliseDomain } from './address.ts';
import {
  type DkimAlgorithm,
  type DkimKey,
  dkimDnsName,
  dkimDnsValue,
  dkimPublicKey,
  generateDkimKey,
  loadDkimKey,
} from './dkim.ts';
import { decryptSecret, encryptSecret } from './secrets.ts';

const MAX_KEYS_PER_ORG = 20;

export interface DkimKeyInput {
  domain: string;
  selector: string;
  /** Generate a key of this kind (rsa-sha256 = RSA-2048) when no privateKey is given. */
  algorithm?: DkimAlgorithm;
  /** Upload an existing key instead (PEM, PKCS#8 or PKCS#1). */
  privateKey?: string;
}

export interface DkimKeyView {
  id: string;
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  publicKey: string;
  /** What to publish in DNS. */
  dnsRecord: { name: string; type: 'TXT'; value: string };
  createdAt: string;
}

export const privateKeyContext = (orgId: string) => `dkim_keys.private_key:${orgId}`;

type Row = {
  id: string;
  domain: string;
  selector: string;
  algorithm: DkimAlgorithm;
  public_key: string;
  created_at: Date;
};

function toView(r: Row): DkimKeyView {
  return {
    id: r.id,
    domain: r.domain,
    selector: r.selector,
    algorithm: r.algorithm,
    publicKey: r.public_key,
    dnsRecord: {
      name: dkimDnsName(r.selector, r.domain),
      type: 'TXT',
      value: dkimDnsValue(r.algorithm, r.public_key),
    },
    createdAt: r.created_at.toISOString(),
  };
}

const VIEW_COLUMNS = ['id', 'domain', 'selector', 'algorithm', 'public_key', 'created_at'] as const;

export async function listDkimKeys(deps: Deps, actor: Actor): Promise<DkimKeyView[]> {
  requireAdmin(actor);
  const rows = await deps.db
    .selectFrom('dkim_keys')
    .select(VIEW_COLUMNS)
    .where('org_id', '=', actor.orgId)
    .orderBy('domain')
    .orderBy('selector')
    .execute();
  return rows.map(toView);
}

export async function addDkimKey(deps: Deps, actor: Actor, input: DkimKeyInput): Promise<DkimKeyView> {
  requireAdmin(actor);
  const domain = normaliseDomain(input.domain, 'domain');
  let privateKeyPem: string;
  let algorithm: DkimAlgorithm;
  let publicKey: string;
  if (input.privateKey != null) {
    if (typeof input.privateKey !== 'string' || input.privateKey.length > 20_000)
      throw invalid('privateKey must be a PEM private key', [{ path: 'privateKey', message: 'PEM' }]);
    // loadDkimKey checks the selector, the key type and size, and the algorithm if one was given.
    const key = loadDkimKey({
      domain,
      selector: input.selector,
      privateKey: input.privateKey,
      algorithm: input.algorithm,
    });
    algorithm = key.algorithm;
    privateKeyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    publicKey = dkimPublicKey(createPublicKey(key.privateKey));
  } else {
    const alg = input.algorithm ?? 'rsa-sha256';
    if (alg !== 'rsa-sha256' && alg !== 'ed25519-sha256')
      throw invalid('algorithm must be rsa-sha256 or ed25519-sha256', [
        { path: 'algorithm', message: 'unknown' },
      ]);
    loadDkimKeySelectorCheck(domain, input.selector);
    const g = generateDkimKey(alg);
    algorithm = g.algorithm;
    privateKeyPem = g.privateKeyPem;
    publicKey = g.publicKey;
  }
  const count = await deps.db
    .selectFrom('dkim_keys')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', actor.orgId)
    .executeTakeFirstOrThrow();
  if (Number(count.n) >= MAX_KEYS_PER_ORG)
    throw new AppError('limit_exceeded', `An org can have at most ${MAX_KEYS_PER_ORG} DKIM keys`);
  const row = await deps.db
    .insertInto('dkim_keys')
    .values({
      org_id: actor.orgId,
      domain,
      selector: input.selector,
      algorithm,
      private_key_enc: encryptSecret(deps.config, privateKeyPem, privateKeyContext(actor.orgId)),
      public_key: publicKey,
      created_at: deps.clock.now(),
    })
    .onConflict((oc) => oc.columns(['org_id', 'domain', 'selector']).doNothing())
    .returning(VIEW_COLUMNS)
    .executeTakeFirst();
  if (!row)
    throw new AppError(
      'conflict',
      `A DKIM key with selector "${input.selector}" already exists for ${domain}`,
    );
  return toView(row);
}

/** Validates a selector the way loadDkimKey does, without a key at hand. */
function loadDkimKeySelectorCheck(domain: string, selector: string) {
  if (typeof selector !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(selector))
    throw invalid(`DKIM selector "${String(selector).slice(0, 80)}" is not valid`, [
      { path: 'selector', message: 'letters, digits, ".", "_" and "-", up to 63' },
    ]);
  return domain;
}

export async function deleteDkimKey(deps: Deps, actor: Actor, id: string): Promise<void> {
  requireAdmin(actor);
  const r = await deps.db
    .deleteFrom('dkim_keys')
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (Number(r.numDeletedRows) === 0) throw notFound('DKIM key');
}

/** One org's parsed signing keys, grouped by domain; the same array objects until the keys change. */
export interface OrgSigningKeys {
  version: string;
  byDomain: Map<string, DkimKey[]>;
}

/**
 * The keys to sign a message from `fromDomain` with: those of the From domain or its closest parent
 * (DMARC relaxed alignment), else those of the sending domain, else none.
 */
export function keysFor(keys: OrgSigningKeys | undefined, fromDomain: string, sendingDomain?: string | null) {
  if (!keys) return [];
  let d = fromDomain.toLowerCase();
  for (;;) {
    const k = keys.byDomain.get(d);
    if (k) return k;
    const dot = d.indexOf('.');
    if (dot < 0 || d.indexOf('.', dot + 1) < 0) break; // stop at the registrable-looking suffix
    d = d.slice(dot + 1);
  }
  return (sendingDomain && keys.byDomain.get(sendingDomain)) || [];
}

const caches = new WeakMap<object, Map<string, OrgSigningKeys>>();

/**
 * Parsed signing keys of these orgs, decrypted and parsed only when they changed since the last call
 * (cached per database handle, i.e. per process).
 */
export async function loadSigningKeys(
  deps: Deps,
  orgIds: readonly string[],
): Promise<Map<string, OrgSigningKeys | Error>> {
  const out = new Map<string, OrgSigningKeys | Error>();
  if (!orgIds.length) return out;
  let cache = caches.get(deps.db);
  if (!cache) {
    cache = new Map();
    caches.set(deps.db, cache);
  }
  const rows = await deps.db
    .selectFrom('dkim_keys')
    .select(['id', 'org_id', 'domain', 'selector', 'algorithm', 'private_key_enc'])
    .where('org_id', 'in', [...orgIds])
    .orderBy('org_id')
    .orderBy('algorithm', 'desc') // rsa-sha256 first: the signature every verifier understands
    .orderBy('id')
    .execute();
  const byOrg = new Map<string, typeof rows>();
  for (const r of rows) {
    const list = byOrg.get(r.org_id) ?? [];
    list.push(r);
    byOrg.set(r.org_id, list);
  }
  for (const orgId of orgIds) {
    const list = byOrg.get(orgId);
    if (!list) {
      cache.delete(orgId);
      continue;
    }
    const version = createHash('sha256')
      .update(list.map((r) => `${r.id}:${r.private_key_enc}`).join('\n'))
      .digest('base64url');
    let entry = cache.get(orgId);
    if (!entry || entry.version !== version) {
      const byDomain = new Map<string, DkimKey[]>();
      try {
        for (const r of list) {
          const pem = decryptSecret(deps.config, r.private_key_enc, privateKeyContext(orgId));
          const key = loadDkimKey({
            domain: r.domain,
            selector: r.selector,
            privateKey: pem,
            algorithm: r.algorithm,
          });
          byDomain.set(r.domain, [...(byDomain.get(r.domain) ?? []), key]);
        }
      } catch (e) {
        // Sending unsigned would fail DMARC where the key is published: the caller holds the mail back.
        out.set(orgId, new Error(`the org's DKIM keys cannot be used: ${(e as Error).message}`));
        continue;
      }
      entry = { version, byDomain };
      cache.set(orgId, entry);
    }
    out.set(orgId, entry);
  }
  return out;
}
