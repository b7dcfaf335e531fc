import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { FieldMeta } from '../values.ts';
import type { CriteriaContext, EvalRecord, ModuleInfo } from './types.ts';

// Test-only helpers: an isolated org with users and modules, made with plain SQL.

export interface TestOrg {
  orgId: string;
  users: string[];
  modules: Map<string, ModuleInfo>;
}

export async function createOrg(pool: pg.Pool, modules: Record<string, FieldMeta[]>, userCount = 3) {
  const tag = randomUUID();
  const org = await pool.query<{ id: string }>('INSERT INTO orgs (name) VALUES ($1) RETURNING id', [
    `Org ${tag}`,
  ]);
  const orgId = org.rows[0].id;
  const profile = await pool.query<{ id: string }>(
    "INSERT INTO profiles (org_id, name) VALUES ($1, 'Standard') RETURNING id",
    [orgId],
  );
  const users: string[] = [];
  for (let i = 0; i < userCount; i++) {
    const u = await pool.query<{ id: string }>(
      'INSERT INTO users (org_id, profile_id, email, name) VALUES ($1, $2, $3, $4) RETURNING id',
      [orgId, profile.rows[0].id, `u${i}-${tag}@test.example`, `User ${i}`],
    );
    users.push(u.rows[0].id);
  }
  const infos = new Map<string, ModuleInfo>();
  for (const [apiName, fields] of Object.entries(modules)) {
    const m = await pool.query<{ id: string }>(
      'INSERT INTO modules (org_id, api_name, singular_label, plural_label) VALUES ($1, $2, $2, $2) RETURNING id',
      [orgId, apiName],
    );
    infos.set(apiName, { id: m.rows[0].id, apiName, fields });
  }
  return { orgId, users, modules: infos } satisfies TestOrg;
}

export interface NewRecord {
  id?: string;
  owner_id: string;
  created_by?: string | null;
  created_at?: string;
  updated_at?: string;
  data: Record<string, unknown>;
}

/** Inserts records in one statement; returns their ids in order. */
export async function insertRecords(pool: pg.Pool, org: TestOrg, module: string, rows: NewRecord[]) {
  const moduleId = org.modules.get(module)!.id;
  const now = new Date().toISOString();
  const res = await pool.query<{ id: string }>(
    `INSERT INTO records (id, org_id, module_id, owner_id, created_by, created_at, updated_at, data)
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[], $7::timestamptz[], $8::jsonb[])
     RETURNING id`,
    [
      rows.map((r) => r.id ?? randomUUID()),
      rows.map(() => org.orgId),
      rows.map(() => moduleId),
      rows.map((r) => r.owner_id),
      rows.map((r) => r.created_by ?? null),
      rows.map((r) => r.created_at ?? now),
      rows.map((r) => r.updated_at ?? now),
      rows.map((r) => JSON.stringify(r.data)),
    ],
  );
  return res.rows.map((r) => r.id);
}

/** Every record of the org as the evaluator sees it, read back from the database. */
export async function loadRecords(pool: pg.Pool, orgId: string): Promise<EvalRecord[]> {
  const res = await pool.query<EvalRecord>(
    'SELECT id, module_id, owner_id, created_by, created_at, updated_at, data FROM records WHERE org_id = $1',
    [orgId],
  );
  return res.rows;
}

export function contextFor(
  org: TestOrg,
  module: string,
  opts: { userId?: string; timeZone?: string; now?: Date } = {},
): CriteriaContext {
  return {
    orgId: org.orgId,
    userId: opts.userId ?? org.users[0],
    timeZone: opts.timeZone ?? 'UTC',
    now: opts.now ?? new Date(),
    module: org.modules.get(module)!,
    relatedModule: (name) => org.modules.get(name),
  };
}

export const field = (
  apiName: string,
  type: FieldMeta['type'],
  options: FieldMeta['options'] = {},
): FieldMeta => ({ apiName, label: apiName, type, required: false, options });
