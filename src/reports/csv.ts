// Reports as CSV: text cells made formula-safe (crm/csv.ts), numbers as they are.
import { stringify } from 'csv-stringify/sync';
import type { FastifyReply } from 'fastify';
import { csvSafe } from '../crm/csv.ts';

export function toCsv(header: string[], rows: (string | number | null)[][]): string {
  return stringify([
    header.map(csvSafe),
    ...rows.map((r) => r.map((c) => (typeof c === 'number' ? c : csvSafe(c ?? '')))),
  ]);
}

export function sendCsv(reply: FastifyReply, name: string, body: string) {
  return reply
    .header('content-type', 'text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${name}.csv"`)
    .send(body);
}
