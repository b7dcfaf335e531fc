import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import { Chart } from './Chart.tsx';
import { CsvLink, DateRangeFields, qs, useDateRange, usePct } from './common.tsx';
import './reports.css';

// Template performance (F2.3): one template's versions over a date range (REPORTS-CORE's
// /api/templates/:id/performance). The full view sits in template settings and the report; the
// mini panel sits beside the template pickers.

interface Perf {
  sent: number;
  tracked?: number;
  opened: number;
  clicked: number;
  openRate: number;
  clickRate: number;
}
interface TemplatePerf {
  templateId: string;
  name: string;
  total: Perf;
  versions: ({ version: number; createdAt: string; author: string | null; comment: string | null } & Perf)[];
}

const usePerformance = (templateId: string, range: { from: string; to: string }) =>
  useQuery({
    queryKey: ['report', 'template-performance', templateId, range],
    queryFn: () => api.get<TemplatePerf>(`/api/templates/${seg(templateId)}/performance?${qs(range)}`),
    enabled: !!templateId,
  });

/** Versions table (date, author, comment) with charts as percentage, as count, version by version. */
export function TemplatePerformance({ templateId }: { templateId: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const pct = usePct();
  const [range, setRange] = useDateRange(90);
  const [as, setAs] = useState<'percent' | 'count'>('percent');
  const q = usePerformance(templateId, range);
  const versions = q.data?.versions ?? [];
  const series = useMemo(
    () =>
      as === 'percent'
        ? [
            {
              label: t('reports.cols.openRate'),
              data: versions.map((v) => Math.round(v.openRate * 1000) / 10),
            },
            {
              label: t('reports.cols.clickRate'),
              data: versions.map((v) => Math.round(v.clickRate * 1000) / 10),
            },
          ]
        : (['sent', 'opened', 'clicked'] as const).map((k) => ({
            label: t(`reports.cols.${k}`),
            data: versions.map((v) => v[k]),
          })),
    [as, versions, t],
  );
  return (
    <section className="template-performance" data-testid="template-performance">
      <div className="report-filters">
        <DateRangeFields value={range} onChange={setRange} />
        <div className="tabs" role="tablist">
          {(['percent', 'count'] as const).map((k) => (
            <button
              key={k}
              type="button"
              role="tab"
              aria-selected={as === k}
              className={`btn btn-small${as === k ? ' active' : ''}`}
              onClick={() => setAs(k)}
            >
              {t(`reports.as.${k}`)}
            </button>
          ))}
        </div>
        <CsvLink href={`/api/templates/${seg(templateId)}/performance?${qs(range)}&format=csv`} />
      </div>
      <ErrorBanner error={q.error} />
      {q.isLoading && <Loading />}
      {q.data && (
        <div className="report-body">
          <Chart
            percent={as === 'percent'}
            label={t('reports.names.templatePerformance')}
            labels={versions.map((v) => t('reports.versionN', { version: v.version }))}
            series={series}
          />
          <div className="table-wrap">
            <table className="data-table" data-testid="report-table">
              <thead>
                <tr>
                  <th>{t('reports.version')}</th>
                  <th>{t('reports.created')}</th>
                  <th>{t('reports.author')}</th>
                  <th>{t('reports.comment')}</th>
                  <th className="num">{t('reports.cols.sent')}</th>
                  <th className="num">{t('reports.cols.opened')}</th>
                  <th className="num">{t('reports.cols.clicked')}</th>
                  <th className="num">{t('reports.cols.openRate')}</th>
                  <th className="num">{t('reports.cols.clickRate')}</th>
                </tr>
              </thead>
              <tbody>
                {versions.map((v) => (
                  <tr key={v.version}>
                    <td>{fmt.integer(v.version)}</td>
                    <td>{fmt.dateTime(v.createdAt)}</td>
                    <td>{v.author ?? ''}</td>
                    <td>{v.comment ?? ''}</td>
                    <td className="num">{fmt.integer(v.sent)}</td>
                    <td className="num">{fmt.integer(v.opened)}</td>
                    <td className="num">{fmt.integer(v.clicked)}</td>
                    <td className="num">{pct(v.openRate)}</td>
                    <td className="num">{pct(v.clickRate)}</td>
                  </tr>
                ))}
              </tbody>
              <tfoot>
                <tr>
                  <td colSpan={4}>{t('reports.total')}</td>
                  <td className="num">{fmt.integer(q.data.total.sent)}</td>
                  <td className="num">{fmt.integer(q.data.total.opened)}</td>
                  <td className="num">{fmt.integer(q.data.total.clicked)}</td>
                  <td className="num">{pct(q.data.total.openRate)}</td>
                  <td className="num">{pct(q.data.total.clickRate)}</td>
                </tr>
              </tfoot>
            </table>
          </div>
        </div>
      )}
    </section>
  );
}

/** A small summary of the chosen template's last 90 days, beside a template picker. */
export function TemplatePerformanceMini({ templateId }: { templateId: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const pct = usePct();
  const [range] = useDateRange(90);
  const q = usePerformance(templateId, range);
  if (!templateId || !q.data) return null;
  const recent = q.data.versions.slice(-3).reverse();
  return (
    <aside className="template-perf-mini" data-testid="template-perf-mini">
      <strong>{t('reports.miniTitle')}</strong>{' '}
      <Link to={`/reports/template-performance/${seg(templateId)}`}>{t('reports.details')}</Link>
      <table>
        <thead>
          <tr>
            <th>{t('reports.version')}</th>
            <th className="num">{t('reports.cols.sent')}</th>
            <th className="num">{t('reports.cols.openRate')}</th>
            <th className="num">{t('reports.cols.clickRate')}</th>
          </tr>
        </thead>
        <tbody>
          {recent.map((v) => (
            <tr key={v.version}>
              <td>{t('reports.versionN', { version: v.version })}</td>
              <td className="num">{fmt.integer(v.sent)}</td>
              <td className="num">{pct(v.openRate)}</td>
              <td className="num">{pct(v.clickRate)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </aside>
  );
}
