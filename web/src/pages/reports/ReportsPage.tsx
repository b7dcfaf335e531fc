import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { PageHeader } from '../../components/ui.tsx';
import './reports.css';

const REPORTS = [
  ['email-analytics', 'emailAnalytics'],
  ['email-calls', 'emailCalls'],
  ['sent-status', 'sentStatus'],
  ['leaderboards', 'leaderboards'],
  ['template-performance', 'templatePerformance'],
] as const;

/** The list of reports (F5). */
export function ReportsPage() {
  const { t } = useTranslation();
  return (
    <div>
      <PageHeader title={t('reports.title')} />
      <div className="report-list">
        {REPORTS.map(([path, key]) => (
          <Link key={path} to={`/reports/${path}`} data-testid={`report-link-${path}`}>
            <h2>{t(`reports.names.${key}`)}</h2>
            <p className="muted">{t(`reports.about.${key}`)}</p>
          </Link>
        ))}
      </div>
    </div>
  );
}
