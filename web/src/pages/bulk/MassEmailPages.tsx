import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { ApiError, api, seg } from '../../api.ts';
import { FilterBuilder } from '../../components/FilterBuilder.tsx';
import { ErrorBanner, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { localInputToIso } from '../../format.ts';
import { useModuleMeta, useModules } from '../../queries.ts';
import { useFmt, useMe } from '../../session.tsx';
import type { Criteria } from '../../types.ts';
import { useTemplates } from '../templates/queries.ts';

// Mass email (F3.3–F3.6, F4.10): the summary with its three folders, a new mass email (recipients
// from criteria with the live count and the reasons people are left out, template, From, now or
// later, follow-ups) and the statistics with the recipients behind each number.

interface MassRow {
  id: string;
  name: string;
  module: string;
  status: string;
  stopReason: string | null;
  sendAt: string | null;
  startedAt: string | null;
  recipients: number;
  excluded: number;
  createdBy: string;
  creatorName: string;
}
interface AudienceCounts {
  recipients: number;
  excluded: Record<string, number>;
  excludedTotal: number;
}
const REASONS = ['no_address', 'invalid_address', 'opted_out', 'suppressed', 'duplicate'];
const STATS = [
  'sent',
  'bounced',
  'delivered',
  'not_delivered',
  'opened',
  'unopened',
  'clicked',
  'unclicked',
  'pending',
];

export function MassEmailsPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const me = useMe();
  const qc = useQueryClient();
  const [folder, setFolder] = useState<'scheduled' | 'sent' | 'stopped'>('scheduled');
  const q = useQuery({
    queryKey: ['mass-emails', folder],
    queryFn: () => api.get<{ massEmails: MassRow[] }>(`/api/mass-emails?folder=${folder}`),
    refetchInterval: 5000,
  });
  const act = useMutation({
    mutationFn: ({ id, action }: { id: string; action: 'stop' | 'start' | 'delete' }) =>
      action === 'delete'
        ? api.del(`/api/mass-emails/${seg(id)}`)
        : api.post(`/api/mass-emails/${seg(id)}/${action}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['mass-emails'] }),
  });
  return (
    <div>
      <PageHeader
        title={t('bulk.title')}
        actions={
          <Link className="btn btn-primary" to="/mass-email/new">
            {t('bulk.new')}
          </Link>
        }
      />
      <div className="tabs" role="tablist">
        {(['scheduled', 'sent', 'stopped'] as const).map((f) => (
          <button
            key={f}
            type="button"
            role="tab"
            aria-selected={folder === f}
            className={`btn btn-small${folder === f ? ' btn-primary' : ''}`}
            onClick={() => setFolder(f)}
          >
            {t(`bulk.folder.${f}`)}
          </button>
        ))}
      </div>
      <ErrorBanner error={q.error ?? act.error} />
      {!q.data ? (
        <Loading />
      ) : q.data.massEmails.length === 0 ? (
        <p className="muted">{t('bulk.empty')}</p>
      ) : (
        <table className="data-table" data-testid="mass-list">
          <thead>
            <tr>
              <th>{t('bulk.name')}</th>
              <th>{t('bulk.module')}</th>
              <th>{t('bulk.when')}</th>
              <th>{t('bulk.recipients')}</th>
              <th>{t('bulk.state')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {q.data.massEmails.map((m) => {
              const mine = m.createdBy === me.user.id;
              return (
                <tr key={m.id}>
                  <td>
                    <Link to={`/mass-email/${seg(m.id)}`}>{m.name}</Link>
                    <div className="muted">{m.creatorName}</div>
                  </td>
                  <td>{m.module}</td>
                  <td>{m.sendAt ? fmt.dateTime(m.sendAt) : '—'}</td>
                  <td>
                    {fmt.integer(m.recipients)}
                    {m.excluded > 0 && (
                      <span className="muted">
                        {' '}
                        (+{fmt.integer(m.excluded)} {t('bulk.leftOut')})
                      </span>
                    )}
                  </td>
                  <td>
                    {t(`bulk.status.${m.status}`)}
                    {m.stopReason && (
                      <div className="muted">
                        {t(`bulk.reason.${m.stopReason.split(':')[0]}`, { defaultValue: m.stopReason })}
                      </div>
                    )}
                  </td>
                  <td className="actions">
                    {mine && (m.status === 'scheduled' || m.status === 'sending') && (
                      <button
                        type="button"
                        className="btn btn-small"
                        onClick={() => act.mutate({ id: m.id, action: 'stop' })}
                      >
                        {t('bulk.stop')}
                      </button>
                    )}
                    {mine && m.status === 'stopped' && (
                      <button
                        type="button"
                        className="btn btn-small"
                        onClick={() => act.mutate({ id: m.id, action: 'start' })}
                      >
                        {t('bulk.start')}
                      </button>
                    )}
                    <button
                      type="button"
                      className="btn btn-small btn-danger"
                      onClick={() =>
                        window.confirm(t('bulk.confirmDelete', { name: m.name })) &&
                        act.mutate({ id: m.id, action: 'delete' })
                      }
                    >
                      {t('common.delete')}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function NewMassEmailPage() {
  const { t } = useTranslation();
  const me = useMe();
  const navigate = useNavigate();
  const modules = useModules();
  const candidates = (modules.data ?? []).filter(
    (m) => m.access.massEmail && !['accounts', 'tasks', 'calls'].includes(m.apiName),
  );
  const [module, setModule] = useState('');
  const mod = module || candidates[0]?.apiName || '';
  const meta = useModuleMeta(mod || undefined);
  const [criteria, setCriteria] = useState<Criteria | null>(null);
  const [name, setName] = useState('');
  const [templateId, setTemplateId] = useState('');
  const [from, setFrom] = useState('user:');
  const [when, setWhen] = useState<'now' | 'later'>('now');
  const [sendAt, setSendAt] = useState('');
  const [allowWait, setAllowWait] = useState(false);
  const [followup, setFollowup] = useState<{
    on: boolean;
    audience: string;
    days: string;
    templateId: string;
  }>({
    on: false,
    audience: 'not_opened',
    days: '3',
    templateId: '',
  });
  const templates = useTemplates({ module: mod, folderId: '', q: '' });
  const addresses = useQuery({
    queryKey: ['org-addresses'],
    queryFn: () =>
      api.get<{ addresses: { id: string; email: string; verified_at: string | null }[] }>(
        '/api/org-addresses',
      ),
  });
  const audience = criteria ? { kind: 'criteria', criteria } : null;
  const counts = useQuery({
    queryKey: ['mass-audience', mod, criteria],
    queryFn: () => api.post<AudienceCounts>('/api/mass-emails/audience', { module: mod, audience }),
    enabled: !!mod && !!audience,
  });
  const create = useMutation({
    mutationFn: () => {
      const [kind, orgAddressId] = from.split(':');
      return api.post<{ id: string }>('/api/mass-emails', {
        module: mod,
        name,
        templateId,
        from: orgAddressId ? { kind, orgAddressId } : { kind },
        audience,
        sendAt: when === 'later' ? localInputToIso(sendAt, me.user.timeZone) : null,
        allowWait,
        ...(followup.on
          ? {
              followups: [
                {
                  templateId: followup.templateId || templateId,
                  audience: followup.audience,
                  days: Number(followup.days),
                },
              ],
            }
          : {}),
      });
    },
    onSuccess: () => navigate('/mass-email'),
  });
  const limitErr = create.error instanceof ApiError && create.error.code === 'limit_exceeded';
  return (
    <div>
      <PageHeader title={t('bulk.new')} />
      {/* The filter is a form of its own: the send form starts after it (forms cannot nest). */}
      <div className="compose">
        <div className="form-grid">
          <label>
            {t('bulk.name')}
            <input
              value={name}
              onChange={(e) => setName(e.target.value)}
              required
              maxLength={200}
              data-testid="mass-name"
            />
          </label>
          <label>
            {t('bulk.module')}
            <select
              value={mod}
              onChange={(e) => {
                setModule(e.target.value);
                setCriteria(null);
                setTemplateId('');
              }}
              data-testid="mass-module"
            >
              {candidates.map((m) => (
                <option key={m.apiName} value={m.apiName}>
                  {m.pluralLabel}
                </option>
              ))}
            </select>
          </label>
        </div>
        <section className="panel" aria-label={t('bulk.recipients')}>
          <h2>{t('bulk.recipients')}</h2>
          {meta.data && (
            <FilterBuilder
              key={mod}
              fields={meta.data.fields}
              initial={criteria}
              onApply={(c) => setCriteria(c)}
            />
          )}
          <ErrorBanner error={counts.error} />
          {counts.data && (
            <p data-testid="mass-count">
              {t('bulk.willReceive', { n: counts.data.recipients })}
              {counts.data.excludedTotal > 0 && (
                <>
                  {' '}
                  {t('bulk.leftOutBy')}{' '}
                  {REASONS.filter((r) => counts.data.excluded[r] > 0)
                    .map((r) => `${t(`bulk.exclusion.${r}`)}: ${counts.data.excluded[r]}`)
                    .join(', ')}
                </>
              )}
            </p>
          )}
        </section>
      </div>
      <form
        className="compose"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <div className="form-grid">
          <label>
            {t('outreach.template')}
            <select
              value={templateId}
              onChange={(e) => setTemplateId(e.target.value)}
              required
              data-testid="mass-template"
            >
              <option value="">—</option>
              {(templates.data ?? []).map((tpl) => (
                <option key={tpl.id} value={tpl.id}>
                  {tpl.name}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t('outreach.from')}
            <select value={from} onChange={(e) => setFrom(e.target.value)}>
              <option value="user:">{`${me.user.name} <${me.user.email}>`}</option>
              <option value="owner:">{t('bulk.ownerAddress')}</option>
              <option value="template:">{t('bulk.templateAddress')}</option>
              {(addresses.data?.addresses ?? [])
                .filter((a) => a.verified_at)
                .map((a) => (
                  <option key={a.id} value={`org_address:${a.id}`}>
                    {a.email}
                  </option>
                ))}
            </select>
          </label>
          <label>
            {t('bulk.when')}
            <select
              value={when}
              onChange={(e) => setWhen(e.target.value as 'now' | 'later')}
              data-testid="mass-when"
            >
              <option value="now">{t('bulk.now')}</option>
              <option value="later">{t('bulk.later')}</option>
            </select>
          </label>
          {when === 'later' && (
            <label>
              {t('bulk.sendAt', { zone: me.user.timeZone })}
              <input
                type="datetime-local"
                value={sendAt}
                onChange={(e) => setSendAt(e.target.value)}
                required
                data-testid="mass-send-at"
              />
            </label>
          )}
        </div>
        <label className="checkbox">
          <input type="checkbox" checked={allowWait} onChange={(e) => setAllowWait(e.target.checked)} />{' '}
          {t('bulk.allowWait')}
        </label>
        <label className="checkbox">
          <input
            type="checkbox"
            checked={followup.on}
            onChange={(e) => setFollowup({ ...followup, on: e.target.checked })}
          />{' '}
          {t('bulk.addFollowup')}
        </label>
        {followup.on && (
          <div className="form-grid">
            <label>
              {t('bulk.followupWho')}
              <select
                value={followup.audience}
                onChange={(e) => setFollowup({ ...followup, audience: e.target.value })}
              >
                {['received', 'opened', 'not_opened', 'clicked', 'not_clicked'].map((a) => (
                  <option key={a} value={a}>
                    {t(`bulk.followupAudience.${a}`)}
                  </option>
                ))}
              </select>
            </label>
            <label>
              {t('bulk.followupDays')}
              <input
                type="number"
                min={1}
                max={365}
                value={followup.days}
                onChange={(e) => setFollowup({ ...followup, days: e.target.value })}
              />
            </label>
            <label>
              {t('outreach.template')}
              <select
                value={followup.templateId}
                onChange={(e) => setFollowup({ ...followup, templateId: e.target.value })}
              >
                <option value="">{t('bulk.sameTemplate')}</option>
                {(templates.data ?? []).map((tpl) => (
                  <option key={tpl.id} value={tpl.id}>
                    {tpl.name}
                  </option>
                ))}
              </select>
            </label>
          </div>
        )}
        <ErrorBanner error={create.error} />
        {limitErr && <p className="muted">{t('bulk.limitHint')}</p>}
        <div className="form-actions">
          <button
            type="submit"
            className="btn btn-primary"
            disabled={create.isPending || !audience}
            data-testid="mass-submit"
          >
            {when === 'now' ? t('bulk.sendNow') : t('bulk.schedule')}
          </button>
        </div>
      </form>
    </div>
  );
}

export function MassEmailStatsPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const { id = '' } = useParams();
  const [stat, setStat] = useState<string | null>(null);
  const m = useQuery({
    queryKey: ['mass-email', id],
    queryFn: () =>
      api.get<MassRow & { followups: { id: string; name: string; status: string }[] }>(
        `/api/mass-emails/${seg(id)}`,
      ),
  });
  const s = useQuery({
    queryKey: ['mass-stats', id],
    queryFn: () =>
      api.get<
        Record<string, number> & {
          excluded: Record<string, number>;
          machineOpens: number;
          machineClicks: number;
        }
      >(`/api/mass-emails/${seg(id)}/stats`),
    refetchInterval: 5000,
  });
  const list = useQuery({
    queryKey: ['mass-stat', id, stat],
    queryFn: () =>
      api.get<{
        items: {
          id: string;
          to_address: string;
          to_name: string | null;
          status: string;
          smtp_response: string | null;
        }[];
      }>(`/api/mass-emails/${seg(id)}/stats/${seg(stat ?? '')}?limit=200`),
    enabled: !!stat,
  });
  if (m.error || s.error) return <ErrorBanner error={m.error ?? s.error} />;
  if (!m.data || !s.data) return <Loading />;
  return (
    <div>
      <div className="breadcrumbs">
        <Link to="/mass-email">{t('bulk.title')}</Link>
      </div>
      <PageHeader
        title={m.data.name}
        sub={`${t(`bulk.status.${m.data.status}`)} · ${m.data.sendAt ? fmt.dateTime(m.data.sendAt) : ''}`}
      />
      {m.data.stopReason && (
        <Notice>
          {t(`bulk.reason.${m.data.stopReason.split(':')[0]}`, { defaultValue: m.data.stopReason })}
        </Notice>
      )}
      <div className="stat-grid" data-testid="mass-stats">
        {STATS.map((k) => (
          <button
            key={k}
            type="button"
            className={`stat${stat === k ? ' active' : ''}`}
            onClick={() => setStat(k)}
          >
            <span className="stat-value">{fmt.integer(s.data[k] ?? 0)}</span>
            <span className="stat-label">{t(`bulk.stat.${k}`)}</span>
          </button>
        ))}
      </div>
      <p className="muted">
        {t('bulk.machine', {
          opens: fmt.integer(s.data.machineOpens),
          clicks: fmt.integer(s.data.machineClicks),
        })}
      </p>
      {stat && (
        <section className="card">
          <div className="card-header">
            <h2>{t(`bulk.stat.${stat}`)}</h2>
            <a className="btn btn-small" href={`/api/mass-emails/${seg(id)}/stats/${seg(stat)}?format=csv`}>
              {t('bulk.exportCsv')}
            </a>
          </div>
          <ErrorBanner error={list.error} />
          <table className="data-table compact" data-testid="mass-stat-list">
            <tbody>
              {(list.data?.items ?? []).map((r) => (
                <tr key={r.id}>
                  <td>{r.to_name ?? ''}</td>
                  <td>{r.to_address}</td>
                  <td>{t(`outreach.status.${r.status}`, { defaultValue: r.status })}</td>
                  <td className="muted">{r.smtp_response ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {m.data.followups.length > 0 && (
        <section className="card">
          <h2>{t('bulk.followups')}</h2>
          <ul>
            {m.data.followups.map((f) => (
              <li key={f.id}>
                <Link to={`/mass-email/${seg(f.id)}`}>{f.name}</Link> · {t(`bulk.status.${f.status}`)}
              </li>
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}
