import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../../api.ts';
import { ErrorBanner, Loading } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import { Chart } from './Chart.tsx';
import { CsvLink, DateRangeFields, qs, ReportFrame, Select, useDateRange } from './common.tsx';
import './reports.css';

// Email & Calls Analytics (F5.2): /api/reports/email-calls.

const COLS = [
  'sent',
  'received',
  'replied',
  'dialledAttended',
  'dialledUnattended',
  'callsReceived',
  'callsMissed',
  'callMinutes',
] as const;
type Counts = Record<(typeof COLS)[number], number>;
interface Row extends Counts {
  period: string | null;
  userId: string | null;
  userName: string | null;
}
type GroupBy = 'day' | 'week' | 'month' | 'year';
type By = 'date' | 'user' | 'both';

export function EmailCallsPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const [range, setRange] = useDateRange();
  const [groupBy, setGroupBy] = useState<GroupBy>('day');
  const [by, setBy] = useState<By>('date');
  const query = qs({ ...range, groupBy, by });
  const q = useQuery({
    queryKey: ['report', 'email-calls', query],
    queryFn: () =>
      api.get<{ summary: Counts; rows: Row[]; calls: boolean }>(`/api/reports/email-calls?${query}`),
  });
  const rows = q.data?.rows ?? [];
  const periodLabel = (p: string | null) => {
    if (!p) return '';
    if (groupBy === 'year') return p.slice(0, 4);
    if (groupBy === 'month') return p.slice(0, 7);
    return fmt.date(p);
  };
  const userLabel = (r: Row) => r.userName ?? t('reports.noUser');
  const rowLabel = (r: Row) =>
    by === 'date'
      ? periodLabel(r.period)
      : by === 'user'
        ? userLabel(r)
        : `${periodLabel(r.period)} · ${userLabel(r)}`;
  const series = useMemo(
    () =>
      (
        [
          'sent',
          'received',
          'replied',
          'dialledAttended',
          'dialledUnattended',
          'callsReceived',
          'callsMissed',
        ] as const
      ).map((k) => ({ label: t(`reports.cols.${k}`), data: (q.data?.rows ?? []).map((r) => r[k]) })),
    [q.data, t],
  );
  return (
    <ReportFrame
      title={t('reports.names.emailCalls')}
      actions={<CsvLink href={`/api/reports/email-calls?${query}&format=csv`} />}
      filters={
        <>
          <DateRangeFields value={range} onChange={setRange} />
          <Select
            label={t('reports.groupBy')}
            value={groupBy}
            testId="report-group-by"
            onChange={setGroupBy}
            options={(['day', 'week', 'month', 'year'] as const).map((g) => ({
              value: g,
              label: t(`reports.periods.${g}`),
            }))}
          />
          <Select
            label={t('reports.by')}
            value={by}
            testId="report-by"
            onChange={setBy}
            options={(['date', 'user', 'both'] as const).map((g) => ({
              value: g,
              label: t(`reports.byOptions.${g}`),
            }))}
          />
        </>
      }
      chart={
        q.data && <Chart label={t('reports.names.emailCalls')} labels={rows.map(rowLabel)} series={series} />
      }
    >
      <ErrorBanner error={q.error} />
      {q.isLoading && <Loading />}
      {q.data && !q.data.calls && <p className="muted">{t('reports.noCallsAccess')}</p>}
      {q.data && (
        <table className="data-table" data-testid="report-table">
          <thead>
            <tr>
              {by !== 'user' && <th>{t('reports.period')}</th>}
              {by !== 'date' && <th>{t('reports.user')}</th>}
              {COLS.map((c) => (
                <th key={c} className="num">
                  {t(`reports.cols.${c}`)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.period}|${r.userId}`}>
                {by !== 'user' && <td>{periodLabel(r.period)}</td>}
                {by !== 'date' && <td>{userLabel(r)}</td>}
                {COLS.map((c) => (
                  <td key={c} className="num">
                    {fmt.number(r[c])}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr>
              <td colSpan={by === 'both' ? 2 : 1}>{t('reports.total')}</td>
              {COLS.map((c) => (
                <td key={c} className="num">
                  {fmt.number(q.data.summary[c])}
                </td>
              ))}
            </tr>
          </tfoot>
        </table>
      )}
    </ReportFrame>
  );
}
