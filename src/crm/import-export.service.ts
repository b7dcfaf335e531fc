import { Readable } from 'node:stream';
import { CsvError, parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';
import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { invalid } from '../errors.ts';
import { linkRecordsToMail } from '../mailbox/links.ts';
import { type Actor, requireModule } from './access.ts';
import { nameFields } from './catalog.ts';
import { csvSafe, suggestMapping } from './csv.ts';
import { type FieldInfo, systemFieldInfos } from './metadata.service.ts';
import { queryRecords, type Scope, scope } from './records.service.ts';
import { normaliseData, UUID_RE } from './values.ts';

export const MAX_REJECTED_LISTED = 1000;
const BATCH = 1000;

export interface ImportResult {
  imported: number;
  rejected: { line: number; reason: string }[];
  rejectedCount: number;
}

export type Progress = (done: number) => void;

export async function previewImport(deps: Deps, actor: Actor, moduleName: string, csv: string) {
  requireModule(actor, moduleName, 'create');
  const s = await scope(deps, actor, moduleName);
  const rows: string[][] = [];
  const parser = Readable.from([csv]).pipe(
    parse({ bom: true, relax_column_count: true, to_line: 6, skip_empty_lines: true }),
  );
  try {
    for await (const r of parser) rows.push(r as string[]);
  } catch (e) {
    throw invalid(`The file is not valid CSV: ${(e as Error).message}`);
  }
  const [columns = [], ...sample] = rows;
  const targets = [...s.mod.fields, { apiName: 'owner', label: 'Owner' }];
  return { columns, sample, suggestedMapping: suggestMapping(columns, targets) };
}

/**
 * Imports CSV rows (header row first) with a column → field mapping. Each row is checked on its own:
 * good rows land in batches, bad ones are reported with their line number and reason.
 */
export async function importRecords(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  input: { csv: string | NodeJS.ReadableStream; mapping: Record<string, string | null> },
  onProgress?: Progress,
): Promise<ImportResult> {
  requireModule(actor, moduleName, 'create');
  const s = await scope(deps, actor, moduleName);
  const fieldNames = new Set(s.mod.fields.map((f) => f.apiName));
  const mapped = Object.entries(input.mapping ?? {}).filter(([, f]) => f);
  for (const [col, f] of mapped)
    if (f !== 'owner' && !fieldNames.has(f as string))
      throw invalid(`Column "${col}" is mapped to an unknown field "${f}"`, [
        { path: `mapping.${col}`, message: 'unknown field' },
      ]);
  const targets = mapped.map(([, f]) => f);
  if (new Set(targets).size !== targets.length) throw invalid('Two columns are mapped to the same field');
  if (mapped.length === 0) throw invalid('Map at least one column to a field');
  const missing = s.mod.fields.filter((f) => f.required && !targets.includes(f.apiName));
  if (missing.length)
    throw invalid(`Map a column to the required field(s): ${missing.map((f) => f.label).join(', ')}`);

  const resolver = referenceResolver(deps, actor, s);
  const result: ImportResult = { imported: 0, rejected: [], rejectedCount: 0 };
  const reject = (line: number, reason: string) => {
    result.rejectedCount++;
    if (result.rejected.length < MAX_REJECTED_LISTED) result.rejected.push({ line, reason });
  };
  let batch: { owner_id: string; data: Record<string, unknown> }[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const rows = await deps.db
      .insertInto('records')
      .values(
        batch.map((b) => ({
          org_id: actor.orgId,
          module_id: s.mod.id,
          owner_id: b.owner_id,
          created_by: actor.userId,
          data: JSON.stringify(b.data),
        })),
      )
      .returning('id')
      .execute();
    // Imported leads and contacts get the mail already stored for their addresses.
    await linkRecordsToMail(
      deps,
      actor.orgId,
      s.mod.apiName,
      rows.map((r) => r.id),
    );
    result.imported += batch.length;
    batch = [];
    onProgress?.(result.imported + result.rejectedCount);
  };

  const source = typeof input.csv === 'string' ? Readable.from([input.csv]) : input.csv;
  const parser = source.pipe(
    parse({ bom: true, columns: true, info: true, skip_empty_lines: true, relax_column_count: true }),
  );
  let headerChecked = false;
  try {
    for await (const { record, info } of parser as AsyncIterable<{
      record: Record<string, string>;
      info: { lines: number };
    }>) {
      if (!headerChecked) {
        const absent = mapped.filter(([col]) => !(col in record)).map(([col]) => col);
        if (absent.length) throw invalid(`The file has no column(s): ${absent.join(', ')}`);
        headerChecked = true;
      }
      const line = info.lines;
      const values: Record<string, unknown> = {};
      let owner: string | undefined;
      for (const [col, f] of mapped) {
        if (f === 'owner') owner = record[col];
        else values[f as string] = record[col];
      }
      const { data, errors } = normaliseData(s.mod.fields, values, { partial: false });
      if (errors.length) {
        reject(line, errors.map((e) => e.message).join('; '));
        continue;
      }
      const refErr = await resolver.resolve(data);
      if (refErr) {
        reject(line, refErr);
        continue;
      }
      const ownerId = owner ? await resolver.user(owner) : actor.userId;
      if (!ownerId) {
        reject(line, `Owner "${owner}" is not a user of this organization`);
        continue;
      }
      batch.push({ owner_id: ownerId, data });
      if (batch.length >= BATCH) await flush();
    }
  } catch (e) {
    // Not every code starts with CSV_ (INVALID_OPENING_QUOTE does not): a broken file is the
    // user's error, never a 500.
    if (e instanceof CsvError) {
      await flush();
      reject(
        (e as { lines?: number }).lines ?? 0,
        `Invalid CSV: ${(e as Error).message}; the rest of the file was not read`,
      );
      return result;
    }
    throw e;
  }
  await flush();
  return result;
}

/** Resolves lookup values (an id, or the related record's name) and owners (id, email or name). */
function referenceResolver(deps: Deps, actor: Actor, s: Scope) {
  const cache = new Map<string, string | null>();
  const lookups = s.mod.fields.filter((f) => f.type === 'lookup' || f.type === 'user');
  async function findRecord(f: FieldInfo, v: string): Promise<string | null> {
    const target = s.modules.get(f.options.module ?? '');
    if (!target) return null;
    const key = `${f.apiName}:${v.toLowerCase()}`;
    if (cache.has(key)) return cache.get(key)!;
    const names = nameFields(target.apiName);
    const nameExpr = sql`lower(concat_ws(' ', ${sql.join(names.map((n) => sql`data ->> ${n}`))}))`;
    const row = await deps.db
      .selectFrom('records')
      .select('id')
      .where('org_id', '=', actor.orgId)
      .where('module_id', '=', target.id)
      .where(UUID_RE.test(v) ? sql<boolean>`id = ${v}::uuid` : sql<boolean>`${nameExpr} = ${v.toLowerCase()}`)
      .limit(1)
      .executeTakeFirst();
    cache.set(key, row?.id ?? null);
    return row?.id ?? null;
  }
  async function user(v: string): Promise<string | null> {
    const key = `user:${v.toLowerCase()}`;
    if (cache.has(key)) return cache.get(key)!;
    const t = v.trim().toLowerCase();
    const row = await deps.db
      .selectFrom('users')
      .select('id')
      .where('org_id', '=', actor.orgId)
      .where(
        UUID_RE.test(t)
          ? sql<boolean>`id = ${t}::uuid`
          : sql<boolean>`(lower(email) = ${t} OR lower(name) = ${t})`,
      )
      .limit(1)
      .executeTakeFirst();
    cache.set(key, row?.id ?? null);
    return row?.id ?? null;
  }
  return {
    user,
    async resolve(data: Record<string, unknown>): Promise<string | undefined> {
      for (const f of lookups) {
        const v = data[f.apiName];
        if (typeof v !== 'string') continue;
        const id = f.type === 'user' ? await user(v) : await findRecord(f, v);
        if (!id) return `${f.label}: "${v}" not found`;
        data[f.apiName] = id;
      }
      return undefined;
    },
  };
}

function cell(f: FieldInfo, v: unknown, lookupName?: string): string | number | boolean {
  if (v === undefined || v === null) return '';
  if (f.type === 'number' || f.type === 'currency') return v as number;
  if (f.type === 'boolean') return v ? 'true' : 'false';
  if (f.type === 'multi_picklist' && Array.isArray(v)) return csvSafe(v.join(';'));
  if (f.type === 'lookup') return csvSafe(lookupName ?? String(v));
  if (v instanceof Date) return v.toISOString();
  return csvSafe(String(v));
}

/** Streams a view or filter as CSV, page by page (keyset), so any size exports in constant memory. */
export async function* exportRecords(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  q: { viewId?: string; criteria?: unknown; columns?: string[] },
  onProgress?: Progress,
): AsyncGenerator<string> {
  const s = await scope(deps, actor, moduleName);
  requireModule(actor, moduleName, 'read');
  const all = [...s.mod.fields, ...systemFieldInfos];
  const cols = q.columns?.length
    ? q.columns.map((c) => all.find((f) => f.apiName === c)).filter((f): f is FieldInfo => !!f)
    : all;
  yield stringify([['Record Id', ...cols.map((f) => csvSafe(f.label))]]);
  let cursor: string | null = null;
  let done = 0;
  do {
    const page: Awaited<ReturnType<typeof queryRecords>> = await queryRecords(deps, actor, moduleName, {
      viewId: q.viewId,
      criteria: q.criteria,
      limit: 500,
      cursor,
    });
    const rows = page.records.map((r) => [
      r.id,
      ...cols.map((f) => {
        if (f.apiName === 'owner') return csvSafe(r.ownerName ?? r.ownerId);
        if (f.apiName === 'created_by') return r.createdBy ?? '';
        if (f.apiName === 'created_at') return r.createdAt.toISOString();
        if (f.apiName === 'updated_at') return r.updatedAt.toISOString();
        return cell(f, r.data[f.apiName], r.lookups[f.apiName]?.displayName);
      }),
    ]);
    if (rows.length) yield stringify(rows);
    done += rows.length;
    onProgress?.(done);
    cursor = page.nextCursor;
  } while (cursor);
}
