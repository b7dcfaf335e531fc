import { type ReactNode, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { PageHeader } from '../../components/ui.tsx';
import { todayIn } from '../../format.ts';
import { useFmt } from '../../session.tsx';

// What every report page shares: a date range in the user's time zone, a query string builder, the
// CSV link, and the frame with the filters above and the chart beside the table.

export interface DateRange {
  from: string;
  to: string;
}

const addDays = (d: string, n: number) =>
  new Date(Date.parse(`${d}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);

/** The last `days` days, today included, in the user's time zone. */
export function useDateRange(days = 30) {
  const fmt = useFmt();
  return useState<DateRange>(() => {
    const to = todayIn(fmt.timeZone);
    return { from: addDays(to, -(days - 1)), to };
  });
}

/** A query string of the defined, non-empty values. */
export function qs(params: object): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  return p.toString();
}

export function DateRangeFields({ value, onChange }: { value: DateRange; onChange: (r: DateRange) => void }) {
  const { t } = useTranslation();
  return (
    <>
      <label className="report-filter">
        <span>{t('reports.from')}</span>
        <input
          type="date"
          data-testid="report-from"
          value={value.from}
          max={value.to}
          onChange={(e) => e.target.value && onChange({ ...value, from: e.target.value })}
        />
      </label>
      <label className="report-filter">
        <span>{t('reports.to')}</span>
        <input
          type="date"
          data-testid="report-to"
          value={value.to}
          min={value.from}
          onChange={(e) => e.target.value && onChange({ ...value, to: e.target.value })}
        />
      </label>
    </>
  );
}

export function Select<T extends string>({
  label,
  value,
  options,
  onChange,
  testId,
}: {
  label: string;
  value: T;
  options: { value: T; label: string }[];
  onChange: (v: T) => void;
  testId?: string;
}) {
  return (
    <label className="report-filter">
      <span>{label}</span>
      <select value={value} data-testid={testId} onChange={(e) => onChange(e.target.value as T)}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </label>
  );
}

export function CsvLink({ href }: { href: string }) {
  const { t } = useTranslation();
  return (
    <a className="btn" href={href} download data-testid="report-csv">
      {t('reports.downloadCsv')}
    </a>
  );
}

/** A rate (0–1) as a percentage, one decimal. */
export function usePct() {
  const fmt = useFmt();
  return (rate: number) => `${fmt.number(Math.round(rate * 1000) / 10)}%`;
}

export function ReportFrame({
  title,
  actions,
  filters,
  toolbar,
  chart,
  children,
}: {
  title: string;
  actions?: ReactNode;
  filters: ReactNode;
  /** Forms that act on the report (save, email), between the filters and the report. */
  toolbar?: ReactNode;
  chart: ReactNode;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  return (
    <div className="report-page">
      <PageHeader
        title={title}
        sub={<Link to="/reports">{t('reports.allReports')}</Link>}
        actions={actions}
      />
      <div className="report-filters">{filters}</div>
      {toolbar}
      <div className="report-body">
        <div className="report-chart-pane">{chart}</div>
        <div className="report-table-pane table-wrap">{children}</div>
      </div>
    </div>
  );
}
