import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../../api.ts';
import { ErrorBanner, Loading } from '../../components/ui.tsx';
import { useModules, useUsers } from '../../queries.ts';
import { useFmt } from '../../session.tsx';
import { useTemplates } from '../templates/queries.ts';
import { Chart } from './Chart.tsx';
import { CsvLink, DateRangeFields, qs, ReportFrame, Select, useDateRange } from './common.tsx';
import './reports.css';

// Email Analytics (F5.1), answered by REPORTS-CORE's /api/reports/email-analytics.

export interface AnalyticsRow {
  sent: number;
  bounced: number;
  tracked: number;
  bouncedTracked: number;
  opened: number;
  openedMachine: number;
  clicked: number;
  clickedMachine: number;
  received: number;
  replied: number;
}
const COLS = [
  'sent',
  'bounced',
  'tracked',
  'bouncedTracked',
  'opened',
  'clicked',
  'received',
  'replied',
] as const;
const MACHINE: Partial<Record<(typeof COLS)[number], keyof AnalyticsRow>> = {
  opened: 'openedMachine',
  clicked: 'clickedMachine',
};
type GroupBy = 'date' | 'template' | 'module' | 'user';

export function EmailAnalyticsPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const [range, setRange] = useDateRange();
  const [groupBy, setGroupBy] = useState<GroupBy>('date');
  const [users, setUsers] = useState<string[]>([]);
  const [module, setModule] = useState('');
  const [template, setTemplate] = useState('');
  const modules = useModules();
  const userList = useUsers();
  const templates = useTemplates({ module: '', folderId: '', q: '' });
  const query = qs({ ...range, groupBy, users: users.join(','), module, template });
  const q = useQuery({
    queryKey: ['report', 'email-analytics', query],
    queryFn: () =>
      api.get<{ summary: AnalyticsRow; rows: ({ key: string; label: string } & AnalyticsRow)[] }>(
        `/api/reports/email-analytics?${query}`,
      ),
  });
  const rows = q.data?.rows ?? [];
  const label = (r: { key: string; label: string }) => (groupBy === 'date' ? fmt.date(r.key) : r.label);
  const series = useMemo(
    () =>
      (['sent', 'opened', 'clicked', 'replied'] as const).map((k) => ({
        label: t(`reports.cols.${k}`),
        data: (q.data?.rows ?? []).map((r) => r[k]),
      })),
    [q.data, t],
  );
  const cell = (r: AnalyticsRow, c: (typeof COLS)[number]) => {
    const m = MACHINE[c];
    return m ? `${fmt.integer(r[c])} (${fmt.integer(r[m])})` : fmt.integer(r[c]);
  };
  return (
    <ReportFrame
      title={t('reports.names.emailAnalytics')}
      actions={<CsvLink href={`/api/reports/email-analytics?${query}&format=csv`} />}
      filters={
        <>
          <DateRangeFields value={range} onChange={setRange} />
          <Select
            label={t('reports.groupBy')}
            value={groupBy}
            testId="report-group-by"
            onChange={setGroupBy}
            options={(['date', 'template', 'module', 'user'] as const).map((g) => ({
              value: g,
              label: t(`reports.groupByOptions.${g}`),
            }))}
          />
          <label className="report-filter">
            <span>{t('reports.users')}</span>
            <select
              multiple
              value={users}
              onChange={(e) => setUsers([...e.target.selectedOptions].map((o) => o.value))}
            >
              {(userList.data ?? []).map((u) => (
                <option key={u.id} value={u.id}>
                  {u.name}
                </option>
              ))}
            </select>
          </label>
          <Select
            label={t('reports.module')}
            value={module}
            onChange={setModule}
            options={[
              { value: '', label: t('reports.any') },
              ...(modules.data ?? [])
                .filter((m) => m.access.read)
                .map((m) => ({ value: m.apiName, label: m.pluralLabel })),
            ]}
          />
          <Select
            label={t('reports.template')}
            value={template}
            onChange={setTemplate}
            options={[
              { value: '', label: t('reports.any') },
              ...(templates.data ?? []).map((x) => ({ value: x.id, label: x.name })),
            ]}
          />
        </>
      }
      chart={
        q.data && (
          <Chart
            type={groupBy === 'date' ? 'line' : 'bar'}
            label={t('reports.names.emailAnalytics')}
            labels={rows.map(label)}
            series={series}
          />
        )
      }
    >
      <ErrorBanner error={q.error} />
      {q.isLoading && <Loading />}
      {q.data && (
        <table className="data-table" data-testid="report-table">
          <thead>
            <tr>
              <th>{t(`reports.groupByOptions.${groupBy}`)}</th>
              {COLS.map((c) => (
                <th key={c} className="num">
                  {t(`reports.cols.${c}`)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.key}>
                <td>{label(r)}</td>
                {COLS.map((c) => (
                  <td key={c} className="num">
                    {cell(r, c)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr>
              <td>{t('reports.total')}</td>
              {COLS.map((c) => (
                <td key={c} className="num">
                  {cell(q.data.summary, c)}
                </td>
              ))}
            </tr>
          </tfoot>
        </table>
      )}
      <p className="muted">{t('reports.machineNote')}</p>
    </ReportFrame>
  );
}
