import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useLocation, useNavigate, useParams } from 'react-router-dom';
import { ApiError, api, seg } from '../../api.ts';
import { FilterBuilder } from '../../components/FilterBuilder.tsx';
import { ErrorBanner, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { localInputToIso } from '../../format.ts';
import { useModuleMeta, useModules, useViews } from '../../queries.ts';
import { useFmt, useMe } from '../../session.tsx';
import type { Criteria } from '../../types.ts';
import { type Audience, AudienceSummary, type MassEmailSeed } from '../massmail/audience.tsx';
import {
  AddressSelect,
  type FollowupDraft,
  FollowupFields,
  followupBody,
  LimitShort,
  limitShortDetails,
  MassTemplatePreview,
  newFollowup,
  SendAtField,
  valueToChoice,
} from '../massmail/compose.tsx';
import type { EditOutcome } from '../massmail/EditMassEmailPage.tsx';
import { TemplatePerformanceMini } from '../reports/TemplatePerformance.tsx';
import { useTemplates } from '../templates/queries.ts';

// Mass email (F3.3–F3.6, F4.10): the summary with its three folders, a new mass email (recipients
// from a filter, a view or a list's selection with the live count and the reasons people are left
// out, template with preview, From / Reply-To, now or later, follow-ups) and the statistics with
// the recipients behind each number. The parts they share, and the edit page, are in ../massmail/.

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
const STATS = [
  'sent',
  'bounced',
  'delivered',
  'not_delivered',
  'tracked',
  'opened',
  'unopened',
  'clicked',
  'unclicked',
  'pending',
  'waiting',
];

export function MassEmailsPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const me = useMe();
  const qc = useQueryClient();
  // After an edit: say what became of it (an edit close to the send time stops it).
  const edited = (useLocation().state as { massEdit?: EditOutcome } | null)?.massEdit;
  const [folder, setFolder] = useState<'scheduled' | 'sent' | 'stopped'>(
    edited?.stoppedBecauseEditedLate ? 'stopped' : 'scheduled',
  );
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
      {edited && (
        <Notice>
          <span data-testid="mass-edit-outcome">
            {edited.stoppedBecauseEditedLate
              ? t('massmail.editedLate', { name: edited.name })
              : t('massmail.edited', { name: edited.name })}
          </span>
        </Notice>
      )}
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
                    {/* Recipients are counted when the send starts; before that it is not 0. */}
                    {m.startedAt ? fmt.integer(m.recipients) : '—'}
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
                    {mine && m.status !== 'sending' && (
                      <Link className="btn btn-small" to={`/mass-email/${seg(m.id)}/edit`}>
                        {m.status === 'sent' ? t('massmail.editFollowups') : t('common.edit')}
                      </Link>
                    )}
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
  // A list page may hand over its selection, view or filter (router state: ids can be many).
  const seed = (useLocation().state as { massEmail?: MassEmailSeed } | null)?.massEmail;
  const modules = useModules();
  const candidates = (modules.data ?? []).filter(
    (m) => m.access.massEmail && !['accounts', 'tasks', 'calls'].includes(m.apiName),
  );
  const [module, setModule] = useState(seed?.module ?? '');
  const mod = module || candidates[0]?.apiName || '';
  const meta = useModuleMeta(mod || undefined);
  const views = useViews(mod);
  const [source, setSource] = useState<Audience['kind']>(seed?.audience.kind ?? 'criteria');
  const [criteria, setCriteria] = useState<Criteria | null>(
    seed?.audience.kind === 'criteria' ? seed.audience.criteria : null,
  );
  const [viewId, setViewId] = useState(seed?.audience.kind === 'view' ? seed.audience.viewId : '');
  const ids = seed?.audience.kind === 'ids' && seed.module === mod ? seed.audience.ids : null;
  const [name, setName] = useState('');
  const [templateId, setTemplateId] = useState('');
  const [from, setFrom] = useState('user:');
  const [replyTo, setReplyTo] = useState('');
  const [when, setWhen] = useState<'now' | 'later'>('now');
  const [sendAt, setSendAt] = useState('');
  const [allowWait, setAllowWait] = useState(false);
  const [followups, setFollowups] = useState<FollowupDraft[]>([]);
  const templates = useTemplates({ module: mod, folderId: '', q: '' });
  const audience: Audience | null =
    source === 'criteria'
      ? criteria && { kind: 'criteria', criteria }
      : source === 'view'
        ? viewId
          ? { kind: 'view', viewId }
          : null
        : ids && { kind: 'ids', ids };
  const create = useMutation({
    mutationFn: (wait: boolean) =>
      api.post<{ id: string }>('/api/mass-emails', {
        module: mod,
        name,
        templateId,
        from: valueToChoice(from),
        replyTo: valueToChoice(replyTo),
        audience,
        sendAt: when === 'later' ? localInputToIso(sendAt, me.user.timeZone) : null,
        allowWait: wait,
        ...(followups.length
          ? { followups: followups.map((f) => followupBody(f, templateId, me.user.timeZone)) }
          : {}),
      }),
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
              form="mass-form"
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
                setViewId('');
                setTemplateId('');
                if (source === 'ids') setSource('criteria');
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
          <label>
            {t('massmail.source')}
            <select
              value={source}
              onChange={(e) => setSource(e.target.value as Audience['kind'])}
              data-testid="mass-source"
            >
              <option value="criteria">{t('massmail.sourceCriteria')}</option>
              <option value="view">{t('massmail.sourceView')}</option>
              {ids && <option value="ids">{t('massmail.sourceIds', { count: ids.length })}</option>}
            </select>
          </label>
          {source === 'view' && (
            <label>
              {t('list.view')}
              <select value={viewId} onChange={(e) => setViewId(e.target.value)} data-testid="mass-view">
                <option value="">—</option>
                {(views.data ?? []).map((v) => (
                  <option key={v.id} value={v.id}>
                    {v.name}
                  </option>
                ))}
              </select>
            </label>
          )}
        </div>
        <section className="panel" aria-label={t('bulk.recipients')}>
          <h2>{t('bulk.recipients')}</h2>
          {source === 'criteria' && meta.data && (
            <FilterBuilder
              key={mod}
              fields={meta.data.fields}
              initial={criteria}
              onApply={(c) => setCriteria(c)}
            />
          )}
          <AudienceSummary module={mod} audience={audience} />
        </section>
      </div>
      <form
        id="mass-form"
        className="compose"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate(allowWait);
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
          {templateId && <TemplatePerformanceMini templateId={templateId} />}
          <AddressSelect label={t('outreach.from')} value={from} onChange={setFrom} />
          <AddressSelect label={t('massmail.replyTo')} value={replyTo} onChange={setReplyTo} optional />
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
            <SendAtField
              label={t('bulk.sendAt', { zone: me.user.timeZone })}
              value={sendAt}
              onChange={setSendAt}
              testId="mass-send-at"
            />
          )}
        </div>
        <MassTemplatePreview module={mod} audience={audience} templateId={templateId} />
        <label className="checkbox">
          <input type="checkbox" checked={allowWait} onChange={(e) => setAllowWait(e.target.checked)} />{' '}
          {t('bulk.allowWait')}
        </label>
        <section aria-label={t('bulk.followups')}>
          <h2>{t('bulk.followups')}</h2>
          {followups.map((f, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: drafts have no id; their order is their identity
            <div key={i} className="mass-followup">
              <FollowupFields
                index={i}
                value={f}
                templates={templates.data ?? []}
                onChange={(v) => setFollowups(followups.map((x, j) => (j === i ? v : x)))}
              />
              <button
                type="button"
                className="btn btn-small"
                onClick={() => setFollowups(followups.filter((_, j) => j !== i))}
              >
                {t('massmail.removeFollowup')}
              </button>
            </div>
          ))}
          <button
            type="button"
            className="btn btn-small"
            onClick={() => setFollowups([...followups, newFollowup()])}
            data-testid="mass-add-followup"
          >
            {t('bulk.addFollowup')}
          </button>
        </section>
        {/* A short limit is told with its numbers below, not twice. */}
        <ErrorBanner error={limitShortDetails(create.error) ? null : create.error} />
        <LimitShort
          error={create.error}
          onWait={() => {
            setAllowWait(true);
            create.mutate(true);
          }}
        />
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
  const list = useInfiniteQuery({
    queryKey: ['mass-stat', id, stat],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) =>
      api.get<{
        items: {
          id: string;
          to_address: string;
          to_name: string | null;
          status: string;
          sent_at: string | null;
          opened_at: string | null;
          clicked_at: string | null;
          bounce_reason: string | null;
          smtp_response: string | null;
        }[];
        next: string | null;
      }>(
        `/api/mass-emails/${seg(id)}/stats/${seg(stat ?? '')}?limit=100${pageParam ? `&after=${seg(pageParam)}` : ''}`,
      ),
    getNextPageParam: (last) => last.next,
    enabled: !!stat,
  });
  const rows = list.data?.pages.flatMap((p) => p.items) ?? [];
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
      {Object.keys(s.data.excluded).length > 0 && (
        <p className="muted">
          {t('bulk.leftOutBy')}{' '}
          {Object.entries(s.data.excluded)
            .map(([r, n]) => `${t(`bulk.exclusion.${r}`, { defaultValue: r })}: ${fmt.integer(n)}`)
            .join(', ')}
        </p>
      )}
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
              {rows.map((r) => (
                <tr key={r.id}>
                  <td>{r.to_name ?? ''}</td>
                  <td>{r.to_address}</td>
                  <td>{t(`outreach.status.${r.status}`, { defaultValue: r.status })}</td>
                  <td>{fmt.dateTime(r.sent_at)}</td>
                  <td>{r.opened_at && t('massmail.openedAt', { when: fmt.dateTime(r.opened_at) })}</td>
                  <td>{r.clicked_at && t('massmail.clickedAt', { when: fmt.dateTime(r.clicked_at) })}</td>
                  <td className="muted">{r.bounce_reason ?? r.smtp_response ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {list.hasNextPage && (
            <button
              type="button"
              className="btn btn-small"
              disabled={list.isFetchingNextPage}
              onClick={() => list.fetchNextPage()}
            >
              {t('massmail.more')}
            </button>
          )}
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
