import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import * as crm from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { invalid } from '../../errors.ts';
import { actorOf } from '../auth.ts';
import { presentModule, presentView } from '../present.ts';

const moduleParams = z.object({ module: z.string().max(60) });
const recordParams = moduleParams.extend({ id: z.string().max(64) });
const sort = z.object({ field: z.string().max(80), dir: z.enum(['asc', 'desc']) });
const filter = { viewId: z.uuid().optional(), criteria: z.unknown().optional() };
const fieldOptions = z
  .object({
    values: z.array(z.string().max(100)).max(500).optional(),
    module: z.string().max(60).optional(),
    max_length: z.number().int().optional(),
    decimals: z.number().int().optional(),
  })
  .strict();

function parseCriteriaParam(raw: string | undefined): unknown {
  if (raw === undefined || raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw invalid('criteria must be JSON', [{ path: 'criteria', message: 'not JSON' }]);
  }
}

export function recordRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  // --- modules and fields (F1.1)
  r.get('/api/modules', { schema: { tags: ['modules'] } }, async (req) => {
    const a = actorOf(req);
    const mods = await crm.listModules(deps, a.orgId);
    return mods
      .map((m) => ({
        ...presentModule({
          id: m.id,
          apiName: m.api_name,
          singularLabel: m.singular_label,
          pluralLabel: m.plural_label,
          isCustom: m.is_custom,
        }),
        access: crm.moduleAccess(a, m.api_name),
      }))
      .filter((m) => m.access.read);
  });
  r.get('/api/modules/:module', { schema: { tags: ['modules'], params: moduleParams } }, async (req) => {
    const a = actorOf(req);
    crm.requireModule(a, req.params.module, 'read');
    const m = await crm.loadModule(deps, a.orgId, req.params.module);
    return {
      module: { ...presentModule(m), access: crm.moduleAccess(a, m.apiName) },
      fields: [...m.fields, ...crm.systemFieldInfos].map(
        ({ id, apiName, label, type, required, options, isCustom, position, system }) => ({
          id,
          apiName,
          label,
          type,
          required,
          options,
          isCustom,
          position,
          system,
        }),
      ),
    };
  });
  r.post(
    '/api/modules',
    {
      schema: {
        tags: ['modules'],
        body: z.object({ singularLabel: z.string().max(100), pluralLabel: z.string().max(100) }),
      },
    },
    async (req, reply) =>
      reply.status(201).send(presentModule(await crm.createModule(deps, actorOf(req), req.body))),
  );
  r.post(
    '/api/modules/:module/fields',
    {
      schema: {
        tags: ['modules'],
        params: moduleParams,
        body: z.object({
          label: z.string().max(100),
          type: z.string().max(30),
          required: z.boolean().optional(),
          options: fieldOptions.optional(),
        }),
      },
    },
    async (req, reply) =>
      reply.status(201).send(await crm.addField(deps, actorOf(req), req.params.module, req.body)),
  );
  r.patch(
    '/api/modules/:module/fields/:fieldId',
    {
      schema: {
        tags: ['modules'],
        params: moduleParams.extend({ fieldId: z.uuid() }),
        body: z.object({
          label: z.string().max(100).optional(),
          required: z.boolean().optional(),
          options: fieldOptions.optional(),
        }),
      },
    },
    async (req) => crm.updateField(deps, actorOf(req), req.params.module, req.params.fieldId, req.body),
  );
  r.delete(
    '/api/modules/:module/fields/:fieldId',
    { schema: { tags: ['modules'], params: moduleParams.extend({ fieldId: z.uuid() }) } },
    async (req, reply) => {
      await crm.deleteField(deps, actorOf(req), req.params.module, req.params.fieldId);
      return reply.status(204).send();
    },
  );

  // --- records (F1.1, F1.4)
  r.post(
    '/api/modules/:module/records/query',
    {
      schema: {
        tags: ['records'],
        params: moduleParams,
        body: z.object({
          ...filter,
          sort: sort.optional(),
          limit: z.number().int().min(1).max(500).optional(),
          cursor: z.string().max(2000).nullable().optional(),
        }),
      },
    },
    async (req) => crm.queryRecords(deps, actorOf(req), req.params.module, req.body),
  );
  r.post(
    '/api/modules/:module/records/count',
    { schema: { tags: ['records'], params: moduleParams, body: z.object(filter) } },
    async (req) => ({ count: await crm.countRecords(deps, actorOf(req), req.params.module, req.body) }),
  );
  r.get(
    '/api/modules/:module/records/search',
    {
      schema: {
        tags: ['records'],
        params: moduleParams,
        querystring: z.object({ q: z.string().max(100).default('') }),
      },
    },
    async (req) => ({ records: await crm.searchRecords(deps, actorOf(req), req.params.module, req.query.q) }),
  );
  r.post(
    '/api/modules/:module/records/mass-update',
    {
      schema: {
        tags: ['records'],
        params: moduleParams,
        body: z.object({
          ...filter,
          ids: z.array(z.string().max(64)).max(10_000).optional(),
          field: z.string().max(80),
          value: z.unknown(),
        }),
      },
    },
    async (req) => ({ updated: await crm.massUpdate(deps, actorOf(req), req.params.module, req.body) }),
  );
  r.post(
    '/api/modules/:module/records',
    {
      schema: {
        tags: ['records'],
        params: moduleParams,
        body: z.object({ data: z.record(z.string(), z.unknown()), ownerId: z.string().max(64).optional() }),
      },
    },
    async (req, reply) =>
      reply.status(201).send(await crm.createRecord(deps, actorOf(req), req.params.module, req.body)),
  );
  r.get(
    '/api/modules/:module/records/:id',
    { schema: { tags: ['records'], params: recordParams } },
    async (req) => crm.getRecord(deps, actorOf(req), req.params.module, req.params.id),
  );
  r.patch(
    '/api/modules/:module/records/:id',
    {
      schema: {
        tags: ['records'],
        params: recordParams,
        body: z.object({
          data: z.record(z.string(), z.unknown()).optional(),
          ownerId: z.string().max(64).optional(),
        }),
      },
    },
    async (req) => crm.updateRecord(deps, actorOf(req), req.params.module, req.params.id, req.body),
  );
  r.delete(
    '/api/modules/:module/records/:id',
    { schema: { tags: ['records'], params: recordParams } },
    async (req, reply) => {
      await crm.deleteRecord(deps, actorOf(req), req.params.module, req.params.id);
      return reply.status(204).send();
    },
  );

  // --- views (F1.4)
  const viewBody = z.object({
    name: z.string().max(100).optional(),
    criteria: z.unknown().optional(),
    columns: z.array(z.string().max(80)).max(50).optional(),
    sort: sort.nullable().optional(),
    shared: z.boolean().optional(),
  });
  r.get('/api/modules/:module/views', { schema: { tags: ['views'], params: moduleParams } }, async (req) =>
    (await crm.listViews(deps, actorOf(req), req.params.module)).map(presentView),
  );
  r.post(
    '/api/modules/:module/views',
    {
      schema: { tags: ['views'], params: moduleParams, body: viewBody.extend({ name: z.string().max(100) }) },
    },
    async (req, reply) =>
      reply
        .status(201)
        .send(presentView(await crm.createView(deps, actorOf(req), req.params.module, req.body))),
  );
  r.patch(
    '/api/views/:id',
    { schema: { tags: ['views'], params: z.object({ id: z.uuid() }), body: viewBody } },
    async (req) => presentView(await crm.updateView(deps, actorOf(req), req.params.id, req.body)),
  );
  r.delete(
    '/api/views/:id',
    { schema: { tags: ['views'], params: z.object({ id: z.uuid() }) } },
    async (req, reply) => {
      await crm.deleteView(deps, actorOf(req), req.params.id);
      return reply.status(204).send();
    },
  );

  // --- CSV import and export (F1.5)
  r.post(
    '/api/modules/:module/import/preview',
    { schema: { tags: ['import-export'], params: moduleParams, body: z.object({ csv: z.string() }) } },
    async (req) => crm.previewImport(deps, actorOf(req), req.params.module, req.body.csv),
  );
  r.post(
    '/api/modules/:module/import',
    {
      schema: {
        tags: ['import-export'],
        params: moduleParams,
        body: z.object({ csv: z.string(), mapping: z.record(z.string(), z.string().max(80).nullable()) }),
      },
    },
    async (req) => crm.importRecords(deps, actorOf(req), req.params.module, req.body),
  );
  r.get(
    '/api/modules/:module/export',
    {
      schema: {
        tags: ['import-export'],
        params: moduleParams,
        querystring: z.object({
          viewId: z.uuid().optional(),
          criteria: z.string().max(20_000).optional(),
          columns: z.string().max(5000).optional(),
        }),
      },
    },
    async (req, reply) => {
      const a = actorOf(req);
      const q = {
        viewId: req.query.viewId,
        criteria: parseCriteriaParam(req.query.criteria),
        columns: req.query.columns ? req.query.columns.split(',') : undefined,
      };
      const gen = crm.exportRecords(deps, a, req.params.module, q);
      const first = await gen.next(); // surface permission and criteria errors as JSON before streaming
      async function* all() {
        if (!first.done) yield first.value;
        yield* gen;
      }
      const name = req.params.module.replace(/[^a-z0-9_]/g, '');
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}.csv"`)
        .send(Readable.from(all()));
    },
  );
}
