import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { api, seg } from '../api.ts';
import { FieldValue } from '../components/FieldValue.tsx';
import { ErrorBanner, Loading, PageHeader } from '../components/ui.tsx';
import { keys, useModuleMeta, useModules } from '../queries.ts';
import { useFmt } from '../session.tsx';
import type { CrmRecord, RelatedList } from '../types.ts';
import { ConversationsPanel } from './conversations/ConversationsPanel.tsx';
import { RecordHistoryPanel } from './massmail/triggers.tsx';
import { EmailPanel } from './outreach/EmailPanel.tsx';

export function RecordDetailPage() {
  const { t } = useTranslation();
  const { module = '', id = '' } = useParams();
  const fmt = useFmt();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const meta = useModuleMeta(module);
  const modules = useModules();
  const q = useQuery({
    queryKey: keys.record(module, id),
    queryFn: () =>
      api.get<{ record: CrmRecord; related: RelatedList[] }>(
        `/api/modules/${seg(module)}/records/${seg(id)}`,
      ),
  });
  const del = useMutation({
    mutationFn: () => api.del(`/api/modules/${seg(module)}/records/${seg(id)}`),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: keys.records(module) });
      navigate(`/m/${seg(module)}`);
    },
  });
  if (meta.error || q.error) return <ErrorBanner error={meta.error ?? q.error} />;
  if (!meta.data || !q.data) return <Loading />;
  const { record, related } = q.data;
  const { module: mod, fields } = meta.data;
  const own = fields.filter((f) => !f.system);
  const system = fields.filter((f) => f.system);
  const name = record.displayName || t('common.untitled');
  const canCreate = (m: string) => modules.data?.find((x) => x.apiName === m)?.access.create;

  return (
    <div className="detail-page">
      <div className="breadcrumbs">
        <Link to={`/m/${seg(module)}`}>{mod.pluralLabel}</Link> <span aria-hidden="true">/</span> {name}
      </div>
      <PageHeader
        title={name}
        sub={t('record.ownedBy', { owner: record.ownerName ?? '—' })}
        actions={
          <>
            {mod.access.edit && (
              <Link className="btn btn-primary" to={`/m/${seg(module)}/${seg(id)}/edit`}>
                {t('common.edit')}
              </Link>
            )}
            {mod.access.delete && (
              <button
                type="button"
                className="btn btn-danger"
                disabled={del.isPending}
                onClick={() => window.confirm(t('record.confirmDelete', { name })) && del.mutate()}
              >
                {t('common.delete')}
              </button>
            )}
          </>
        }
      />
      <ErrorBanner error={del.error} />
      <section className="card">
        <h2>{t('record.information', { module: mod.singularLabel })}</h2>
        <dl className="detail-grid">
          {own.map((f) => (
            <div key={f.apiName} className={f.type === 'long_text' ? 'wide' : undefined}>
              <dt>{f.label}</dt>
              <dd>
                <FieldValue record={record} field={f} />
              </dd>
            </div>
          ))}
        </dl>
      </section>
      <section className="card">
        <h2>{t('record.system')}</h2>
        <dl className="detail-grid">
          {system.map((f) => (
            <div key={f.apiName}>
              <dt>{f.label}</dt>
              <dd>
                <FieldValue record={record} field={f} />
              </dd>
            </div>
          ))}
        </dl>
      </section>
      {fields.some((f) => f.type === 'email') || module === 'deals' ? (
        <EmailPanel module={module} id={id} />
      ) : null}
      {module === 'leads' || module === 'contacts' ? <ConversationsPanel module={module} id={id} /> : null}
      <RecordHistoryPanel module={module} id={id} />
      {related.map((rl) => (
        <section key={`${rl.module}.${rl.field}`} className="card">
          <div className="card-header">
            <h2>
              {rl.moduleLabel}
              {rl.fieldLabel && rl.fieldLabel !== mod.singularLabel && (
                <span className="muted"> · {rl.fieldLabel}</span>
              )}{' '}
              <span className="badge">{fmt.integer(rl.records.length)}</span>
            </h2>
            {canCreate(rl.module) && (
              <Link
                className="btn btn-small"
                to={`/m/${seg(rl.module)}/new?${new URLSearchParams({ [rl.field]: id, [`${rl.field}_name`]: record.displayName })}`}
              >
                {t('record.newRelated')}
              </Link>
            )}
          </div>
          {rl.records.length === 0 ? (
            <p className="muted">{t('record.noRelated')}</p>
          ) : (
            <table className="data-table compact">
              <thead>
                <tr>
                  <th>{t('record.name')}</th>
                  <th>{t('record.owner')}</th>
                  <th>{t('record.created')}</th>
                </tr>
              </thead>
              <tbody>
                {rl.records.map((r) => (
                  <tr key={r.id}>
                    <td>
                      <Link to={`/m/${seg(rl.module)}/${seg(r.id)}`}>
                        {r.displayName || t('common.untitled')}
                      </Link>
                    </td>
                    <td>{r.ownerName ?? '—'}</td>
                    <td>{fmt.dateTime(r.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      ))}
    </div>
  );
}
