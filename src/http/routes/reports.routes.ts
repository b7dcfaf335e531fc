import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { sendCsv, toCsv } from '../../reports/csv.ts';
import { ROW_KEYS } from '../../reports/query.ts';
import {
  emailAnalytics,
  leaderboards,
  templatePerformance,
  templatePerformanceList,
} from '../../reports/reports.service.ts';
import { actorOf } from '../auth.ts';

const date = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');
const range = { from: date, to: date, format: z.enum(['json', 'csv']).default('json') };
const idList = z
  .string()
  .max(4000)
  .transform((s) => s.split(',').filter(Boolean))
  .pipe(z.array(z.uuid()).max(200));
const pct = (r: number) => Math.round(r * 10_000) / 100;
const ROW_HEADERS = [
  'Sent',
  'Bounced',
  'Tracked',
  'Bounced (tracked)',
  'Opened',
  'Opened by machines',
  'Clicked',
  'Clicked by machines',
  'Received',
  'Replied',
];

export function reportRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['reports'];

  r.get(
    '/api/reports/email-analytics',
    {
      schema: {
        tags,
        description:
          'Email Analytics (F5.1): a summary of the period (dates in your time zone) and its break-up; the rows add up to the summary. Opened and clicked count people; machine counts beside them.',
        querystring: z
          .object({
            ...range,
            users: idList.optional(),
            module: z.string().max(60).optional(),
            template: z.uuid().optional(),
            groupBy: z.enum(['date', 'template', 'module', 'user']).default('date'),
          })
          .strict(),
      },
    },
    async (req, reply) => {
      const { format, ...q } = req.query;
      const res = await emailAnalytics(deps, actorOf(req), q);
      if (format === 'json') return res;
      const head = { date: 'Date', template: 'Template', module: 'Module', user: 'User' }[q.groupBy];
      const csv = toCsv(
        [head, ...ROW_HEADERS],
        [
          ...res.rows.map((x) => [x.label, ...ROW_KEYS.map((k) => x[k])]),
          ['Total', ...ROW_KEYS.map((k) => res.summary[k])],
        ],
      );
      return sendCsv(reply, `email-analytics-${q.from}-${q.to}`, csv);
    },
  );

  r.get(
    '/api/reports/leaderboards',
    {
      schema: {
        tags,
        description:
          'Leaderboards (F5.4): top 10 templates by open and by click rate (over tracked sends; at least minSends of them), top 10 users by emails sent.',
        querystring: z
          .object({ ...range, minSends: z.coerce.number().int().min(1).max(1_000_000).default(50) })
          .strict(),
      },
    },
    async (req, reply) => {
      const { format, ...q } = req.query;
      const res = await leaderboards(deps, actorOf(req), q);
      if (format === 'json') return res;
      const rows: (string | number)[][] = [];
      for (const [board, list] of [
        ['Open rate', res.templatesByOpenRate],
        ['Click rate', res.templatesByClickRate],
      ] as const)
        list.forEach((t, i) => {
          rows.push([board, i + 1, t.name, t.sent, t.tracked, t.opened, t.clicked, pct(t.rate)]);
        });
      res.usersBySent.forEach((u, i) => {
        rows.push(['Emails sent', i + 1, u.name, u.sent, '', '', '', '']);
      });
      const csv = toCsv(['Board', 'Rank', 'Name', 'Sent', 'Tracked', 'Opened', 'Clicked', 'Rate %'], rows);
      return sendCsv(reply, `leaderboards-${q.from}-${q.to}`, csv);
    },
  );

  r.get(
    '/api/reports/template-performance',
    {
      schema: {
        tags,
        description: 'Template performance (F2.3) of every template (or those whose name matches search).',
        querystring: z.object({ ...range, search: z.string().max(200).optional() }).strict(),
      },
    },
    async (req, reply) => {
      const { format, ...q } = req.query;
      const res = await templatePerformanceList(deps, actorOf(req), q);
      if (format === 'json') return res;
      const csv = toCsv(
        [
          'Template',
          'Module',
          'Versions',
          'Sent',
          'Tracked',
          'Opened',
          'Clicked',
          'Open rate %',
          'Click rate %',
        ],
        res.rows.map((t) => [
          t.name,
          t.module,
          t.versions,
          t.sent,
          t.tracked,
          t.opened,
          t.clicked,
          pct(t.openRate),
          pct(t.clickRate),
        ]),
      );
      return sendCsv(reply, `template-performance-${q.from}-${q.to}`, csv);
    },
  );

  r.get(
    '/api/templates/:id/performance',
    {
      schema: {
        tags,
        description: "A template's performance over the range, version by version (date, author, comment).",
        params: z.object({ id: z.uuid() }),
        querystring: z.object(range).strict(),
      },
    },
    async (req, reply) => {
      const { format, ...q } = req.query;
      const res = await templatePerformance(deps, actorOf(req), req.params.id, q);
      if (format === 'json') return res;
      const csv = toCsv(
        [
          'Version',
          'Created',
          'Author',
          'Comment',
          'Sent',
          'Tracked',
          'Opened',
          'Clicked',
          'Open rate %',
          'Click rate %',
        ],
        res.versions.map((x) => [
          x.version,
          x.createdAt.toISOString(),
          x.author,
          x.comment,
          x.sent,
          x.tracked,
          x.opened,
          x.clicked,
          pct(x.openRate),
          pct(x.clickRate),
        ]),
      );
      return sendCsv(reply, `template-performance-${res.templateId}`, csv);
    },
  );
}
