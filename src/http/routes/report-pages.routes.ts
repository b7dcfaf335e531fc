import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { csvSafe } from '../../crm/csv.ts';
import type { Deps } from '../../deps.ts';
import { BYS, EMAIL_CALLS_COLUMNS, emailCallsReport, GROUP_BYS } from '../../reports/calls.ts';
import {
  checkColumns,
  deleteSavedReport,
  emailSentStatus,
  listSavedReports,
  listSentStatus,
  SENT_COLUMNS,
  SENT_STATES,
  saveReport,
  sentStatusCsv,
} from '../../reports/sent-status.ts';
import { actorOf } from '../auth.ts';

const date = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');
const sentFilter = {
  from: date,
  to: date,
  status: z.enum(SENT_STATES).optional(),
};
const columnList = z
  .string()
  .max(500)
  .transform((s) => s.split(',').filter(Boolean));

// Email & Calls Analytics (F5.2) and Sent Email Status (F5.3), with saved reports.
export function reportPageRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['reports'];

  r.get(
    '/api/reports/email-calls',
    {
      schema: {
        tags,
        querystring: z.object({
          from: date,
          to: date,
          groupBy: z.enum(GROUP_BYS).default('day'),
          by: z.enum(BYS).default('date'),
          format: z.enum(['json', 'csv']).default('json'),
        }),
      },
    },
    async (req, reply) => {
      const { format, ...q } = req.query;
      const rep = await emailCallsReport(deps, actorOf(req), q);
      if (format === 'json') return rep;
      const head = [...(q.by !== 'user' ? ['Period'] : []), ...(q.by !== 'date' ? ['User'] : [])];
      const csv = stringify([
        [...head, ...EMAIL_CALLS_COLUMNS],
        ...rep.rows.map((row) => [
          ...(q.by !== 'user' ? [row.period ?? ''] : []),
          ...(q.by !== 'date' ? [csvSafe(row.userName ?? '')] : []),
          ...EMAIL_CALLS_COLUMNS.map((c) => String(row[c])),
        ]),
      ]);
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="email-calls-${q.from}-${q.to}.csv"`)
        .send(csv);
    },
  );

  r.get(
    '/api/reports/sent-status',
    {
      schema: {
        tags,
        querystring: z.object({
          ...sentFilter,
          after: z.string().max(80).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(50),
          format: z.enum(['json', 'csv']).default('json'),
          columns: columnList.optional(),
        }),
      },
    },
    async (req, reply) => {
      const { format, columns, ...q } = req.query;
      const actor = actorOf(req);
      if (format === 'json') return listSentStatus(deps, actor, q);
      const out = await sentStatusCsv(deps, actor, {
        ...q,
        columns: checkColumns(columns?.length ? columns : [...SENT_COLUMNS]),
      });
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="sent-email-status-${q.from}-${q.to}.csv"`)
        .header('x-parley-truncated', String(out.truncated))
        .send(out.csv);
    },
  );

  r.post(
    '/api/reports/sent-status/email',
    {
      schema: {
        tags,
        body: z
          .object({
            ...sentFilter,
            columns: z.array(z.enum(SENT_COLUMNS)).min(1).max(SENT_COLUMNS.length),
            userIds: z.array(z.uuid()).min(1).max(50),
            name: z.string().max(100).nullable().optional(),
          })
          .strict(),
      },
    },
    async (req, reply) => reply.status(202).send(await emailSentStatus(deps, actorOf(req), req.body)),
  );

  r.get('/api/reports/saved', { schema: { tags } }, async (req) => ({
    reports: await listSavedReports(deps, actorOf(req)),
  }));
  r.post(
    '/api/reports/saved',
    {
      schema: {
        tags,
        body: z.object({ name: z.string().max(200), config: z.record(z.string(), z.unknown()) }).strict(),
      },
    },
    async (req, reply) => reply.status(201).send(await saveReport(deps, actorOf(req), req.body)),
  );
  r.delete(
    '/api/reports/saved/:id',
    { schema: { tags, params: z.object({ id: z.uuid() }) } },
    async (req, reply) => {
      await deleteSavedReport(deps, actorOf(req), req.params.id);
      return reply.status(204).send();
    },
  );
}
