import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading, Notice } from '../../components/ui.tsx';
import { useUsers } from '../../queries.ts';
import { useFmt, useMe } from '../../session.tsx';
import { Chart } from './Chart.tsx';
import { CsvLink, DateRangeFields, qs, ReportFrame, Select, useDateRange } from './common.tsx';
import './reports.css';

// Sent Email Status (F5.3): one row per sent email, columns chosen and ordered, saved as named
// reports, downloaded as CSV or emailed to other users (/api/reports/sent-status…).

const COLUMNS = [
  'recipient',
  'record',
  'subject',
  'template',
  'sender',
  'sentAt',
  'status',
  'opens',
  'clicks',
] as const;
type Column = (typeof COLUMNS)[number];
const STATES = ['sent', 'delivered', 'bounced', 'opened', 'clicked', 'replied'] as const;
type State = (typeof STATES)[number];
const FUNNEL = ['sent', 'bounced', 'opened', 'clicked', 'replied'] as const;
type Funnel = (typeof FUNNEL)[number];

interface Row {
  id: string;
  recipient: { address: string; name: string | null };
  record: { id: string; module: string; name: string } | null;
  subject: string;
  template: { id: string; name: string; version: number | null } | null;
  sender: { id: string; name: string } | null;
  sentAt: string;
  status: State;
  opens: number;
  clicks: number;
  machineOpens: number;
  machineClicks: number;
}
interface Saved {
  id: string;
  name: string;
  config: { columns: Column[]; status: State | null; from: string | null; to: string | null };
}

export function SentStatusPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const me = useMe();
  const qc = useQueryClient();
  const [range, setRange] = useDateRange();
  const [status, setStatus] = useState<State | ''>('');
  const [columns, setColumns] = useState<Column[]>([...COLUMNS]);
  const [savedId, setSavedId] = useState('');
  const [name, setName] = useState('');
  const [recipients, setRecipients] = useState<string[]>([]);
  const [notice, setNotice] = useState('');
  const filter = qs({ ...range, status });
  const list = useInfiniteQuery({
    queryKey: ['report', 'sent-status', filter],
    queryFn: ({ pageParam }) =>
      api.get<{ rows: Row[]; next: string | null }>(
        `/api/reports/sent-status?${filter}&limit=100${pageParam ? `&after=${encodeURIComponent(pageParam)}` : ''}`,
      ),
    initialPageParam: '',
    getNextPageParam: (p) => p.next ?? undefined,
  });
  // The chart: the period's totals from the report rollups (a scan of every row would be slow).
  const summary = useQuery({
    queryKey: ['report', 'email-analytics', 'summary', range],
    queryFn: () =>
      api.get<{ summary: Record<Funnel, number> }>(
        `/api/reports/email-analytics?${qs({ ...range, groupBy: 'module' })}`,
      ),
  });
  const saved = useQuery({
    queryKey: ['report', 'saved'],
    queryFn: () => api.get<{ reports: Saved[] }>('/api/reports/saved'),
  });
  const users = useUsers();
  const save = useMutation({
    mutationFn: () =>
      api.post<Saved>('/api/reports/saved', {
        name,
        config: { columns, status: status || null, from: range.from, to: range.to },
      }),
    onSuccess: (s) => {
      setSavedId(s.id);
      setNotice(t('reports.saved', { name: s.name }));
      void qc.invalidateQueries({ queryKey: ['report', 'saved'] });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.del(`/api/reports/saved/${seg(id)}`),
    onSuccess: () => {
      setSavedId('');
      void qc.invalidateQueries({ queryKey: ['report', 'saved'] });
    },
  });
  const email = useMutation({
    mutationFn: () =>
      api.post<{ queued: number; rows: number }>('/api/reports/sent-status/email', {
        ...range,
        ...(status ? { status } : {}),
        columns,
        userIds: recipients,
        name: name || null,
      }),
    onSuccess: (r) => {
      setRecipients([]);
      setNotice(t('reports.emailed', { count: r.queued, rows: r.rows }));
    },
  });

  const load = (id: string) => {
    setSavedId(id);
    const s = saved.data?.reports.find((x) => x.id === id);
    if (!s) return;
    setName(s.name);
    setColumns(s.config.columns);
    setStatus(s.config.status ?? '');
    if (s.config.from && s.config.to) setRange({ from: s.config.from, to: s.config.to });
  };
  const toggle = (c: Column) => setColumns((cs) => (cs.includes(c) ? cs.filter((x) => x !== c) : [...cs, c]));
  const move = (i: number, d: -1 | 1) =>
    setColumns((cs) => {
      const j = i + d;
      if (j < 0 || j >= cs.length) return cs;
      const out = [...cs];
      [out[i], out[j]] = [out[j] as Column, out[i] as Column];
      return out;
    });
  const rows = useMemo(() => list.data?.pages.flatMap((p) => p.rows) ?? [], [list.data]);
  const chartSeries = useMemo(
    () => [{ label: t('reports.emails'), data: FUNNEL.map((k) => summary.data?.summary[k] ?? 0) }],
    [summary.data, t],
  );
  const cell = (r: Row, c: Column) => {
    switch (c) {
      case 'recipient':
        return r.recipient.name ? `${r.recipient.name} <${r.recipient.address}>` : r.recipient.address;
      case 'record':
        return r.record ? (
          <Link to={`/m/${seg(r.record.module)}/${seg(r.record.id)}`}>{r.record.name || r.record.id}</Link>
        ) : (
          ''
        );
      case 'subject':
        return r.subject;
      case 'template':
        return r.template
          ? t('reports.templateVersion', { name: r.template.name, version: r.template.version ?? '' })
          : '';
      case 'sender':
        return r.sender?.name ?? '';
      case 'sentAt':
        return fmt.dateTime(r.sentAt);
      case 'status':
        return t(`reports.states.${r.status}`);
      case 'opens':
        return fmt.integer(r.opens);
      case 'clicks':
        return fmt.integer(r.clicks);
    }
  };
  const onSave = (e: FormEvent) => {
    e.preventDefault();
    setNotice('');
    save.mutate();
  };
  const onEmail = (e: FormEvent) => {
    e.preventDefault();
    setNotice('');
    email.mutate();
  };
  const numeric = (c: Column) => c === 'opens' || c === 'clicks';

  return (
    <ReportFrame
      title={t('reports.names.sentStatus')}
      actions={
        <CsvLink href={`/api/reports/sent-status?${filter}&format=csv&columns=${columns.join(',')}`} />
      }
      filters={
        <>
          <DateRangeFields value={range} onChange={setRange} />
          <Select
            label={t('reports.status')}
            value={status}
            testId="report-status"
            onChange={setStatus}
            options={[
              { value: '' as const, label: t('reports.any') },
              ...STATES.map((s) => ({ value: s, label: t(`reports.states.${s}`) })),
            ]}
          />
          <Select
            label={t('reports.savedReports')}
            value={savedId}
            testId="report-saved"
            onChange={load}
            options={[
              { value: '', label: t('reports.none') },
              ...(saved.data?.reports ?? []).map((s) => ({ value: s.id, label: s.name })),
            ]}
          />
          {savedId && (
            <button type="button" className="btn btn-danger-link" onClick={() => remove.mutate(savedId)}>
              {t('reports.deleteSaved')}
            </button>
          )}
          <fieldset className="report-columns" data-testid="report-columns">
            <legend>{t('reports.columns')}</legend>
            <ol>
              {columns.map((c, i) => (
                <li key={c}>
                  <label>
                    <input type="checkbox" checked onChange={() => toggle(c)} data-testid={`column-${c}`} />
                    {t(`reports.cols.${c}`)}
                  </label>
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={t('reports.moveLeft', { column: t(`reports.cols.${c}`) })}
                    data-testid={`column-left-${c}`}
                    disabled={i === 0}
                    onClick={() => move(i, -1)}
                  >
                    ‹
                  </button>
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={t('reports.moveRight', { column: t(`reports.cols.${c}`) })}
                    disabled={i === columns.length - 1}
                    onClick={() => move(i, 1)}
                  >
                    ›
                  </button>
                </li>
              ))}
            </ol>
            {COLUMNS.filter((c) => !columns.includes(c)).map((c) => (
              <label key={c}>
                <input
                  type="checkbox"
                  checked={false}
                  onChange={() => toggle(c)}
                  data-testid={`column-${c}`}
                />
                {t(`reports.cols.${c}`)}
              </label>
            ))}
          </fieldset>
        </>
      }
      toolbar={
        <>
          <div className="report-side-forms">
            <form onSubmit={onSave}>
              <label className="report-filter">
                <span>{t('reports.reportName')}</span>
                <input
                  value={name}
                  maxLength={100}
                  required
                  data-testid="report-name"
                  onChange={(e) => setName(e.target.value)}
                />
              </label>
              <button
                type="submit"
                className="btn"
                disabled={columns.length === 0 || save.isPending}
                data-testid="report-save"
              >
                {t('reports.save')}
              </button>
            </form>
            <form onSubmit={onEmail}>
              <label className="report-filter">
                <span>{t('reports.emailTo')}</span>
                <select
                  multiple
                  data-testid="report-email-users"
                  value={recipients}
                  onChange={(e) => setRecipients([...e.target.selectedOptions].map((o) => o.value))}
                >
                  {(users.data ?? [])
                    .filter((u) => u.id !== me.user.id && (u.status === 'active' || u.status === 'confirmed'))
                    .map((u) => (
                      <option key={u.id} value={u.id}>
                        {u.name}
                      </option>
                    ))}
                </select>
              </label>
              <button
                type="submit"
                className="btn"
                disabled={!recipients.length || !columns.length || email.isPending}
                data-testid="report-email"
              >
                {t('reports.emailCsv')}
              </button>
            </form>
          </div>
          {notice && <Notice>{notice}</Notice>}
        </>
      }
      chart={
        summary.data && (
          <Chart
            label={t('reports.names.sentStatus')}
            labels={FUNNEL.map((k) => t(`reports.cols.${k}`))}
            series={chartSeries}
          />
        )
      }
    >
      <ErrorBanner error={list.error ?? save.error ?? email.error ?? remove.error ?? summary.error} />
      {list.isLoading && <Loading />}
      {list.data && (
        <table className="data-table" data-testid="report-table">
          <thead>
            <tr>
              {columns.map((c) => (
                <th key={c} className={numeric(c) ? 'num' : undefined}>
                  {t(`reports.cols.${c}`)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                {columns.map((c) => (
                  <td key={c} className={numeric(c) ? 'num' : undefined}>
                    {cell(r, c)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {list.data && rows.length === 0 && <p className="muted">{t('reports.noRows')}</p>}
      {list.hasNextPage && (
        <button
          type="button"
          className="btn"
          disabled={list.isFetchingNextPage}
          onClick={() => void list.fetchNextPage()}
        >
          {t('reports.more')}
        </button>
      )}
    </ReportFrame>
  );
}
