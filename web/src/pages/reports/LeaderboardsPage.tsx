import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import { Chart } from './Chart.tsx';
import { CsvLink, DateRangeFields, qs, ReportFrame, useDateRange, usePct } from './common.tsx';
import './reports.css';

// Leaderboards (F5.4), from REPORTS-CORE's /api/reports/leaderboards.

interface TemplateRank {
  templateId: string;
  name: string;
  sent: number;
  tracked?: number;
  opened: number;
  clicked?: number;
  rate: number;
}
interface Boards {
  templatesByOpenRate: TemplateRank[];
  templatesByClickRate: TemplateRank[];
  usersBySent: { userId: string; name: string; sent: number }[];
}

export function LeaderboardsPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const pct = usePct();
  const [range, setRange] = useDateRange(90);
  const [minSends, setMinSends] = useState(50);
  const query = qs({ ...range, minSends });
  const q = useQuery({
    queryKey: ['report', 'leaderboards', query],
    queryFn: () => api.get<Boards>(`/api/reports/leaderboards?${query}`),
  });
  const board = (key: 'openRate' | 'clickRate', list: TemplateRank[]) => (
    <section key={key}>
      <h2>{t(`reports.boards.${key}`)}</h2>
      <Chart
        horizontal
        percent
        label={t(`reports.boards.${key}`)}
        labels={list.map((x) => x.name)}
        series={[{ label: t(`reports.cols.${key}`), data: list.map((x) => Math.round(x.rate * 1000) / 10) }]}
      />
      <table className="data-table" data-testid="report-table">
        <thead>
          <tr>
            <th>{t('reports.rank')}</th>
            <th>{t('reports.template')}</th>
            <th className="num">{t('reports.cols.sent')}</th>
            <th className="num">{t(`reports.cols.${key}`)}</th>
          </tr>
        </thead>
        <tbody>
          {list.map((x, i) => (
            <tr key={x.templateId}>
              <td>{fmt.integer(i + 1)}</td>
              <td>
                <Link to={`/reports/template-performance/${seg(x.templateId)}`}>{x.name}</Link>
              </td>
              <td className="num">{fmt.integer(x.sent)}</td>
              <td className="num">{pct(x.rate)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
  return (
    <ReportFrame
      title={t('reports.names.leaderboards')}
      actions={<CsvLink href={`/api/reports/leaderboards?${query}&format=csv`} />}
      filters={
        <>
          <DateRangeFields value={range} onChange={setRange} />
          <label className="report-filter">
            <span>{t('reports.minSends')}</span>
            <input
              type="number"
              min={1}
              value={minSends}
              onChange={(e) => setMinSends(Math.max(1, Math.floor(Number(e.target.value) || 1)))}
            />
          </label>
        </>
      }
      chart={
        q.data && (
          <Chart
            horizontal
            label={t('reports.boards.users')}
            labels={q.data.usersBySent.map((u) => u.name)}
            series={[{ label: t('reports.cols.sent'), data: q.data.usersBySent.map((u) => u.sent) }]}
          />
        )
      }
    >
      <ErrorBanner error={q.error} />
      {q.isLoading && <Loading />}
      {q.data && (
        <>
          <section>
            <h2>{t('reports.boards.users')}</h2>
            <table className="data-table" data-testid="report-table">
              <thead>
                <tr>
                  <th>{t('reports.rank')}</th>
                  <th>{t('reports.user')}</th>
                  <th className="num">{t('reports.cols.sent')}</th>
                </tr>
              </thead>
              <tbody>
                {q.data.usersBySent.map((u, i) => (
                  <tr key={u.userId}>
                    <td>{fmt.integer(i + 1)}</td>
                    <td>{u.name}</td>
                    <td className="num">{fmt.integer(u.sent)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
          <div className="report-boards">
            {board('openRate', q.data.templatesByOpenRate)}
            {board('clickRate', q.data.templatesByClickRate)}
          </div>
        </>
      )}
    </ReportFrame>
  );
}
