import { Liquid, type Template } from 'liquidjs';
import type { Deps } from '../deps.ts';
import type { DeliveryRenderer, DueMessage, RenderedParts } from './delivery.ts';

// Renders message rows queued without content (mass emails, follow-ups, autoresponders, workflow
// emails) when the deliverer claims them. Per batch: one query per kind of data (template versions,
// records, their related records, owners, senders, orgs), templates parsed once per process and
// version, then one Liquid render per part per recipient.

// Same sandbox as the template editor: strict, no file system, own properties only, bounded work.
const LIQUID_OPTS = {
  strictVariables: true,
  strictFilters: true,
  ownPropertyOnly: true,
  relativeReference: false,
  fs: {
    readFileSync: () => {
      throw new Error('templates cannot include files');
    },
    existsSync: () => false,
    exists: async () => false,
    readFile: async () => {
      throw new Error('templates cannot include files');
    },
    resolve: (_dir: string, file: string) => file,
  },
  parseLimit: 1e6,
  renderLimit: 2_000,
  memoryLimit: 64e6,
};
const textEngine = new Liquid(LIQUID_OPTS);
const htmlEngine = new Liquid({ ...LIQUID_OPTS, outputEscape: 'escape' });

interface Compiled {
  subject: Template[];
  html: Template[] | null;
  text: Template[];
}
const compiled = new Map<string, Compiled>(); // `${templateId}:${version}`: versions never change
const MAX_COMPILED = 500;

/** The merge-field name of a module's record: leads → lead, contacts → contact, custom → its api name. */
export function mergeKey(apiName: string): string {
  return /^(lead|contact|account|deal|task|call)s$/.test(apiName) ? apiName.slice(0, -1) : apiName;
}

export const renderTemplateRows: DeliveryRenderer = async (deps: Deps, rows: DueMessage[]) => {
  const out = new Map<string, RenderedParts | Error>();
  const withTemplate = rows.filter((r) => r.template_id && r.template_version !== null);
  for (const r of rows) if (!withTemplate.includes(r)) out.set(r.id, new Error('no template to render from'));
  if (withTemplate.length === 0) return out;

  const versions = await deps.db
    .selectFrom('template_versions')
    .select(['org_id', 'template_id', 'version', 'subject', 'html', 'text'])
    .where((eb) =>
      eb.or(
        [...new Set(withTemplate.map((r) => `${r.template_id}:${r.template_version}`))].map((k) => {
          const [id, v] = k.split(':');
          return eb.and([eb('template_id', '=', id), eb('version', '=', Number(v))]);
        }),
      ),
    )
    .execute();
  const versionOf = new Map(versions.map((v) => [`${v.template_id}:${v.version}`, v]));
  const contexts = await loadContexts(deps, withTemplate);

  for (const r of withTemplate) {
    const key = `${r.template_id}:${r.template_version}`;
    const v = versionOf.get(key);
    if (!v || v.org_id !== r.org_id) {
      out.set(r.id, new Error('its template version no longer exists'));
      continue;
    }
    try {
      let c = compiled.get(key);
      if (!c) {
        c = {
          subject: textEngine.parse(v.subject),
          html: v.html ? htmlEngine.parse(v.html) : null,
          text: textEngine.parse(v.text),
        };
        if (compiled.size >= MAX_COMPILED) compiled.clear();
        compiled.set(key, c);
      }
      const scope = contexts.get(r.id) ?? {};
      const subject = (textEngine.renderSync(c.subject, scope) as string).replace(/\s+/g, ' ').trim();
      out.set(r.id, {
        subject,
        html: c.html ? (htmlEngine.renderSync(c.html, scope) as string) : null,
        text: textEngine.renderSync(c.text, scope) as string,
      });
    } catch (err) {
      out.set(r.id, new Error(`merge failed: ${(err as Error).message}`));
    }
  }
  return out;
};

type Scope = Record<string, unknown>;

/** The Liquid scope of each row: its record (and related records), owner, sender and org. */
async function loadContexts(deps: Deps, rows: DueMessage[]): Promise<Map<string, Scope>> {
  const recordIds = [...new Set(rows.map((r) => r.record_id).filter((x): x is string => !!x))];
  const orgIds = [...new Set(rows.map((r) => r.org_id))];
  const records = recordIds.length
    ? await deps.db
        .selectFrom('records as r')
        .innerJoin('modules as m', 'm.id', 'r.module_id')
        .select(['r.id', 'r.org_id', 'r.owner_id', 'r.data', 'm.api_name'])
        .where('r.id', 'in', recordIds)
        .where('r.org_id', 'in', orgIds)
        .execute()
    : [];
  const allFields = await deps.db
    .selectFrom('fields as f')
    .innerJoin('modules as m', 'm.id', 'f.module_id')
    .select(['f.org_id', 'm.api_name as module', 'f.api_name', 'f.type', 'f.options'])
    .where('f.org_id', 'in', orgIds)
    .execute();
  // Every field of the module is in the scope, empty ones as null: strict Liquid then fails only on
  // names that do not exist (caught when the template is saved), while `default:` fills the blanks.
  const fieldsOf = new Map<string, string[]>();
  for (const f of allFields) {
    const k = `${f.org_id}:${f.module}`;
    fieldsOf.set(k, [...(fieldsOf.get(k) ?? []), f.api_name]);
  }
  const withAll = (orgId: string, module: string, data: Scope): Scope => {
    const full: Scope = {};
    for (const name of fieldsOf.get(`${orgId}:${module}`) ?? []) full[name] = data[name] ?? null;
    return full;
  };
  // Lookups one level deep (a Contact's Account, a Deal's Account and Contact).
  const lookupFields = allFields.filter((f) => f.type === 'lookup');
  const relatedIds = new Set<string>();
  for (const rec of records)
    for (const f of lookupFields)
      if (f.org_id === rec.org_id && f.module === rec.api_name) {
        const v = (rec.data as Record<string, unknown>)[f.api_name];
        if (typeof v === 'string') relatedIds.add(v);
      }
  const related = relatedIds.size
    ? await deps.db
        .selectFrom('records as r')
        .innerJoin('modules as m', 'm.id', 'r.module_id')
        .select(['r.id', 'r.org_id', 'r.data', 'm.api_name'])
        .where('r.id', 'in', [...relatedIds])
        .where('r.org_id', 'in', orgIds)
        .execute()
    : [];
  const userIds = [
    ...new Set([
      ...records.map((r) => r.owner_id),
      ...rows.map((r) => r.sender_id).filter((x): x is string => !!x),
    ]),
  ];
  const users = userIds.length
    ? await deps.db
        .selectFrom('users')
        .select(['id', 'org_id', 'name', 'email'])
        .where('id', 'in', userIds)
        .where('org_id', 'in', orgIds)
        .execute()
    : [];
  const orgs = await deps.db.selectFrom('orgs').select(['id', 'name']).where('id', 'in', orgIds).execute();
  const recById = new Map(records.map((r) => [r.id, r]));
  const relById = new Map(related.map((r) => [r.id, r]));
  const userById = new Map(users.map((u) => [u.id, u]));
  const orgById = new Map(orgs.map((o) => [o.id, o]));
  const person = (u: { name: string; email: string } | undefined) => {
    if (!u) return { name: '', email: '', first_name: '', last_name: '' };
    const [first, ...rest] = u.name.split(' ');
    return { name: u.name, email: u.email, first_name: first ?? '', last_name: rest.join(' ') };
  };

  const out = new Map<string, Scope>();
  for (const row of rows) {
    const rec = row.record_id ? recById.get(row.record_id) : undefined;
    const scope: Scope = {
      owner: person(rec ? userById.get(rec.owner_id) : undefined),
      sender: person(row.sender_id ? userById.get(row.sender_id) : undefined),
      org: { name: orgById.get(row.org_id)?.name ?? '' },
    };
    if (rec && rec.org_id === row.org_id) {
      const data = withAll(rec.org_id, rec.api_name, rec.data as Scope);
      for (const f of lookupFields)
        if (f.org_id === rec.org_id && f.module === rec.api_name) {
          const target = relById.get(String(data[f.api_name] ?? ''));
          const targetModule = (f.options as { module?: string }).module ?? '';
          data[mergeKey(targetModule || f.api_name)] =
            target && target.org_id === rec.org_id
              ? withAll(rec.org_id, target.api_name, target.data as Scope)
              : withAll(rec.org_id, targetModule, {});
        }
      scope[mergeKey(rec.api_name)] = data;
    }
    out.set(row.id, scope);
  }
  return out;
}
