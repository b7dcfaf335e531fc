import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, seg } from '../../api.ts';
import { ErrorBanner, FormRow, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import './webhooks.css';

// Outgoing webhooks (F7.2), admins only: endpoints with their events, the signing secret shown
// once, and each endpoint's delivery log (status, response code, duration, attempts).

interface Endpoint {
  id: string;
  url: string;
  description: string;
  events: string[];
  enabled: boolean;
  createdAt: string;
}
interface Delivery {
  id: string;
  event: string;
  status: 'pending' | 'delivering' | 'delivered' | 'failed';
  attempts: number;
  nextAttemptAt: string | null;
  lastStatusCode: number | null;
  lastError: string | null;
  lastDurationMs: number | null;
  deliveredAt: string | null;
  createdAt: string;
}
interface DeliveryDetail extends Delivery {
  payload: unknown;
  log: { attempt: number; at: string; statusCode: number | null; durationMs: number; error: string | null }[];
}

const KEY = ['webhooks'] as const;

export function WebhooksPage() {
  const { t } = useTranslation();
  const q = useQuery({
    queryKey: KEY,
    queryFn: () => api.get<{ endpoints: Endpoint[]; events: string[] }>('/api/webhooks'),
  });
  const [secret, setSecret] = useState<{ url: string; secret: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data) return <Loading />;
  return (
    <div>
      <PageHeader title={t('webhooks.title')} sub={t('webhooks.intro')} />
      {secret && (
        <div className="alert alert-success webhook-secret" role="status" data-testid="webhook-secret">
          <p>{t('webhooks.secretOnce', { url: secret.url })}</p>
          <code>{secret.secret}</code>
          <p className="muted">{t('webhooks.signatureHelp')}</p>
          <button type="button" className="btn btn-small" onClick={() => setSecret(null)}>
            {t('webhooks.secretCopied')}
          </button>
        </div>
      )}
      <NewEndpoint events={q.data.events} onCreated={setSecret} />
      <section className="card">
        <h2>{t('webhooks.endpoints')}</h2>
        {q.data.endpoints.length === 0 ? (
          <p className="muted">{t('webhooks.none')}</p>
        ) : (
          q.data.endpoints.map((e) => (
            <EndpointRow
              key={e.id}
              e={e}
              events={q.data.events}
              open={open === e.id}
              onToggle={() => setOpen(open === e.id ? null : e.id)}
              onSecret={(s) => setSecret({ url: e.url, secret: s })}
            />
          ))
        )}
      </section>
    </div>
  );
}

function EventChecks({
  events,
  value,
  onChange,
  idPrefix,
}: {
  events: string[];
  value: string[];
  onChange: (v: string[]) => void;
  idPrefix: string;
}) {
  const { t } = useTranslation();
  return (
    <fieldset className="checkbox-group" aria-labelledby={`${idPrefix}-label`}>
      {events.map((ev) => (
        <label key={ev} className="checkbox">
          <input
            type="checkbox"
            checked={value.includes(ev)}
            onChange={(e) => onChange(e.target.checked ? [...value, ev] : value.filter((x) => x !== ev))}
          />{' '}
          {t(`webhooks.event.${ev}`)}
        </label>
      ))}
    </fieldset>
  );
}

function NewEndpoint({
  events,
  onCreated,
}: {
  events: string[];
  onCreated: (s: { url: string; secret: string }) => void;
}) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [chosen, setChosen] = useState<string[]>(['opened', 'clicked']);
  const create = useMutation({
    mutationFn: () =>
      api.post<{ endpoint: Endpoint; secret: string }>('/api/webhooks', { url, description, events: chosen }),
    onSuccess: async (r) => {
      onCreated({ url: r.endpoint.url, secret: r.secret });
      setUrl('');
      setDescription('');
      await qc.invalidateQueries({ queryKey: KEY });
    },
  });
  const errors = create.error instanceof ApiError ? create.error.fieldErrors() : {};
  return (
    <section className="card">
      <h2>{t('webhooks.add')}</h2>
      <form
        className="form-grid"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <FormRow id="wh-url" label={t('webhooks.url')} required error={errors.url}>
          <input
            id="wh-url"
            type="url"
            required
            maxLength={2000}
            placeholder={t('webhooks.urlPlaceholder')}
            value={url}
            onChange={(e) => setUrl(e.target.value)}
            data-testid="webhook-url"
          />
        </FormRow>
        <FormRow id="wh-desc" label={t('webhooks.description')}>
          <input
            type="text"
            id="wh-desc"
            maxLength={200}
            value={description}
            onChange={(e) => setDescription(e.target.value)}
          />
        </FormRow>
        <FormRow id="wh-events" label={t('webhooks.events')} required error={errors.events} wide>
          <EventChecks events={events} value={chosen} onChange={setChosen} idPrefix="wh-events" />
        </FormRow>
        <ErrorBanner error={create.error} />
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={create.isPending || !chosen.length}>
            {t('webhooks.create')}
          </button>
        </div>
      </form>
    </section>
  );
}

function EndpointRow({
  e,
  events,
  open,
  onToggle,
  onSecret,
}: {
  e: Endpoint;
  events: string[];
  open: boolean;
  onToggle: () => void;
  onSecret: (s: string) => void;
}) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [chosen, setChosen] = useState(e.events);
  const [notice, setNotice] = useState<string | null>(null);
  const done = async (msg?: string) => {
    setNotice(msg ?? null);
    await qc.invalidateQueries({ queryKey: KEY });
    await qc.invalidateQueries({ queryKey: ['webhook-deliveries', e.id] });
  };
  const patch = useMutation({
    mutationFn: (body: Partial<Endpoint>) => api.patch(`/api/webhooks/${seg(e.id)}`, body),
    onSuccess: () => done(t('webhooks.saved')),
  });
  const del = useMutation({
    mutationFn: () => api.del(`/api/webhooks/${seg(e.id)}`),
    onSuccess: () => done(),
  });
  const rotate = useMutation({
    mutationFn: () => api.post<{ secret: string }>(`/api/webhooks/${seg(e.id)}/secret`),
    onSuccess: (r) => onSecret(r.secret),
  });
  const test = useMutation({
    mutationFn: () => api.post(`/api/webhooks/${seg(e.id)}/test`),
    onSuccess: () => done(t('webhooks.testQueued')),
  });
  const error = patch.error ?? del.error ?? rotate.error ?? test.error;
  return (
    <div className="webhook-endpoint" data-testid="webhook-endpoint">
      <div className="card-header">
        <div>
          <strong className="url">{e.url}</strong>{' '}
          {!e.enabled && <span className="badge">{t('webhooks.disabled')}</span>}
          {e.description && <div className="muted">{e.description}</div>}
          <div className="muted">{e.events.map((ev) => t(`webhooks.event.${ev}`)).join(', ')}</div>
        </div>
        <div className="page-actions">
          <button type="button" className="btn btn-small" onClick={onToggle} aria-expanded={open}>
            {open ? t('webhooks.hideLog') : t('webhooks.showLog')}
          </button>
          <button
            type="button"
            className="btn btn-small"
            onClick={() => patch.mutate({ enabled: !e.enabled })}
          >
            {e.enabled ? t('webhooks.disable') : t('webhooks.enable')}
          </button>
          <button type="button" className="btn btn-small" disabled={!e.enabled} onClick={() => test.mutate()}>
            {t('webhooks.sendTest')}
          </button>
          <button
            type="button"
            className="btn btn-small"
            onClick={() => window.confirm(t('webhooks.confirmRotate')) && rotate.mutate()}
          >
            {t('webhooks.rotate')}
          </button>
          <button
            type="button"
            className="btn btn-small btn-danger"
            onClick={() => window.confirm(t('webhooks.confirmDelete', { url: e.url })) && del.mutate()}
          >
            {t('common.delete')}
          </button>
        </div>
      </div>
      <ErrorBanner error={error} />
      {notice && <Notice>{notice}</Notice>}
      {open && (
        <>
          <div className="webhook-events-edit">
            <span id={`wh-ev-${e.id}-label`}>{t('webhooks.events')}</span>
            <EventChecks events={events} value={chosen} onChange={setChosen} idPrefix={`wh-ev-${e.id}`} />
            <button
              type="button"
              className="btn btn-small"
              disabled={!chosen.length || patch.isPending}
              onClick={() => patch.mutate({ events: chosen })}
            >
              {t('common.save')}
            </button>
          </div>
          <DeliveryLog endpointId={e.id} />
        </>
      )}
    </div>
  );
}

function DeliveryLog({ endpointId }: { endpointId: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const [status, setStatus] = useState('');
  const [detail, setDetail] = useState<string | null>(null);
  const q = useQuery({
    queryKey: ['webhook-deliveries', endpointId, status],
    queryFn: () =>
      api.get<{ deliveries: Delivery[] }>(
        `/api/webhooks/${seg(endpointId)}/deliveries${status ? `?status=${seg(status)}` : ''}`,
      ),
    refetchInterval: 10_000,
  });
  return (
    <div className="webhook-log" data-testid="webhook-log">
      <h3>{t('webhooks.log')}</h3>
      <label>
        {t('webhooks.status')}{' '}
        <select value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">{t('webhooks.allStatuses')}</option>
          {(['pending', 'delivered', 'failed'] as const).map((s) => (
            <option key={s} value={s}>
              {t(`webhooks.st.${s}`)}
            </option>
          ))}
        </select>
      </label>
      {q.error && <ErrorBanner error={q.error} />}
      {!q.data ? (
        <Loading />
      ) : q.data.deliveries.length === 0 ? (
        <p className="muted">{t('webhooks.noDeliveries')}</p>
      ) : (
        <table className="data-table compact">
          <thead>
            <tr>
              <th>{t('webhooks.when')}</th>
              <th>{t('webhooks.eventCol')}</th>
              <th>{t('webhooks.status')}</th>
              <th>{t('webhooks.code')}</th>
              <th>{t('webhooks.duration')}</th>
              <th>{t('webhooks.attempts')}</th>
              <th>{t('webhooks.next')}</th>
            </tr>
          </thead>
          <tbody>
            {q.data.deliveries.map((d) => (
              <tr key={d.id}>
                <td>
                  <button
                    type="button"
                    className="link-button"
                    onClick={() => setDetail(detail === d.id ? null : d.id)}
                  >
                    {fmt.dateTime(d.createdAt)}
                  </button>
                </td>
                <td>{t(`webhooks.event.${d.event}`)}</td>
                <td title={d.lastError ?? undefined}>{t(`webhooks.st.${d.status}`)}</td>
                <td>{d.lastStatusCode ?? '—'}</td>
                <td>{d.lastDurationMs === null ? '—' : t('webhooks.ms', { ms: d.lastDurationMs })}</td>
                <td>{fmt.integer(d.attempts)}</td>
                <td>{d.nextAttemptAt ? fmt.dateTime(d.nextAttemptAt) : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {detail && <DeliveryDetailView id={detail} endpointId={endpointId} />}
    </div>
  );
}

function DeliveryDetailView({ id, endpointId }: { id: string; endpointId: string }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: ['webhook-delivery', id],
    queryFn: () => api.get<DeliveryDetail>(`/api/webhooks/deliveries/${seg(id)}`),
  });
  const retry = useMutation({
    mutationFn: () => api.post(`/api/webhooks/deliveries/${seg(id)}/retry`),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: ['webhook-delivery', id] });
      await qc.invalidateQueries({ queryKey: ['webhook-deliveries', endpointId] });
    },
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data) return <Loading />;
  return (
    <div className="panel" data-testid="webhook-delivery">
      <h4>{t('webhooks.attemptLog')}</h4>
      <ul>
        {q.data.log.map((a) => (
          <li key={a.attempt}>
            {t('webhooks.attemptLine', {
              n: a.attempt,
              at: fmt.dateTime(a.at),
              code: a.statusCode ?? '—',
              ms: a.durationMs,
            })}
            {a.error && <span className="muted"> · {a.error}</span>}
          </li>
        ))}
      </ul>
      <pre className="payload">{JSON.stringify(q.data.payload, null, 2)}</pre>
      {q.data.status === 'failed' && (
        <button
          type="button"
          className="btn btn-small"
          onClick={() => retry.mutate()}
          disabled={retry.isPending}
        >
          {t('webhooks.retry')}
        </button>
      )}
      <ErrorBanner error={retry.error} />
    </div>
  );
}
