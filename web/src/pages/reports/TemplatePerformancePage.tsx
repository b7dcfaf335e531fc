import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading, PageHeader } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import { useTemplate } from '../templates/queries.ts';
import { Chart } from './Chart.tsx';
import { CsvLink, DateRangeFields, qs, ReportFrame, useDateRange, usePct } from './common.tsx';
import { TemplatePerformance } from './TemplatePerformance.tsx';
import './reports.css';

// Template performance (F2.3) across templates, searchable (/api/reports/template-performance),
// and one template's versions.

interface ListRow {
  templateId: string;
  name: string;
  module: string;
  versions: number;
  sent: number;
  opened: number;
  clicked: number;
  openRate: number;
  clickRate: number;
}

export function TemplatePerformancePage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const pct = usePct();
  const [range, setRange] = useDateRange(90);
  const [search, setSearch] = useState('');
  const query = qs({ ...range, search: search.trim() });
  const q = useQuery({
    queryKey: ['report', 'template-performance', query],
    queryFn: () => api.get<{ rows: ListRow[] }>(`/api/reports/template-performance?${query}`),
  });
  const rows = q.data?.rows ?? [];
  const top = useMemo(() => [...rows].sort((a, b) => b.sent - a.sent).slice(0, 15), [rows]);
  return (
    <ReportFrame
      title={t('reports.names.templatePerformance')}
      actions={<CsvLink href={`/api/reports/template-performance?${query}&format=csv`} />}
      filters={
        <>
          <DateRangeFields value={range} onChange={setRange} />
          <label className="report-filter">
            <span>{t('reports.search')}</span>
            <input
              type="search"
              value={search}
              data-testid="report-search"
              onChange={(e) => setSearch(e.target.value)}
            />
          </label>
        </>
      }
      chart={
        q.data && (
          <Chart
            percent
            label={t('reports.names.templatePerformance')}
            labels={top.map((r) => r.name)}
            series={[
              { label: t('reports.cols.openRate'), data: top.map((r) => Math.round(r.openRate * 1000) / 10) },
              {
                label: t('reports.cols.clickRate'),
                data: top.map((r) => Math.round(r.clickRate * 1000) / 10),
              },
            ]}
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
              <th>{t('reports.template')}</th>
              <th>{t('reports.module')}</th>
              <th className="num">{t('reports.versions')}</th>
              <th className="num">{t('reports.cols.sent')}</th>
              <th className="num">{t('reports.cols.opened')}</th>
              <th className="num">{t('reports.cols.clicked')}</th>
              <th className="num">{t('reports.cols.openRate')}</th>
              <th className="num">{t('reports.cols.clickRate')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.templateId}>
                <td>
                  <Link to={`/reports/template-performance/${seg(r.templateId)}`}>{r.name}</Link>
                </td>
                <td>{r.module}</td>
                <td className="num">{fmt.integer(r.versions)}</td>
                <td className="num">{fmt.integer(r.sent)}</td>
                <td className="num">{fmt.integer(r.opened)}</td>
                <td className="num">{fmt.integer(r.clicked)}</td>
                <td className="num">{pct(r.openRate)}</td>
                <td className="num">{pct(r.clickRate)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </ReportFrame>
  );
}

export function TemplatePerformanceDetailPage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  const tpl = useTemplate(id);
  return (
    <div className="report-page">
      <PageHeader
        title={tpl.data?.name ?? t('reports.names.templatePerformance')}
        sub={<Link to="/reports/template-performance">{t('reports.names.templatePerformance')}</Link>}
      />
      <ErrorBanner error={tpl.error} />
      <TemplatePerformance templateId={id} />
    </div>
  );
}
