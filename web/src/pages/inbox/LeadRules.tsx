import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { ErrorBanner } from '../../components/ui.tsx';
import { useIsAdmin } from '../../session.tsx';
import { inboxKeys, type LeadRule } from './inbox-api.ts';

/** Rules that add senders of incoming mail as Leads or Contacts (yours, and the org's). */
export function LeadRules() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const isAdmin = useIsAdmin();
  const q = useQuery({
    queryKey: inboxKeys.rules,
    queryFn: () => api.get<{ rules: LeadRule[] }>('/api/inbox/lead-rules'),
  });
  const [scope, setScope] = useState<'user' | 'org'>('user');
  const [module, setModule] = useState<'leads' | 'contacts'>('leads');
  const [match, setMatch] = useState<'domain' | 'keyword' | 'folder'>('domain');
  const [values, setValues] = useState('');
  const refresh = () => qc.invalidateQueries({ queryKey: inboxKeys.rules });
  const create = useMutation({
    mutationFn: () =>
      api.post('/api/inbox/lead-rules', {
        scope,
        module,
        match,
        values: values
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean),
      }),
    onSuccess: async () => {
      setValues('');
      await refresh();
    },
  });
  const toggle = useMutation({
    mutationFn: (r: LeadRule) => api.patch(`/api/inbox/lead-rules/${seg(r.id)}`, { active: !r.active }),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.del(`/api/inbox/lead-rules/${seg(id)}`),
    onSuccess: refresh,
  });
  const rules = q.data?.rules ?? [];
  return (
    <section className="card" aria-label={t('inbox.rules.title')}>
      <h2>{t('inbox.rules.title')}</h2>
      <p className="muted">{t('inbox.rules.intro')}</p>
      {rules.length === 0 ? (
        <p className="muted">{t('inbox.rules.none')}</p>
      ) : (
        <table className="data-table compact">
          <thead>
            <tr>
              <th>{t('inbox.rules.scope')}</th>
              <th>{t('inbox.rules.add')}</th>
              <th>{t('inbox.rules.when')}</th>
              <th>{t('inbox.rules.active')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rules.map((r) => {
              const mine = r.scope === 'user' || isAdmin;
              return (
                <tr key={r.id}>
                  <td>{t(`inbox.rules.scope_${r.scope}`)}</td>
                  <td>{t(`inbox.rules.module_${r.module}`)}</td>
                  <td>
                    {t(`inbox.rules.match_${r.match}`)}: {r.values.join(', ')}
                  </td>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={t('inbox.rules.active')}
                      checked={r.active}
                      disabled={!mine}
                      onChange={() => toggle.mutate(r)}
                    />
                  </td>
                  <td>
                    {mine && (
                      <button type="button" className="btn btn-small" onClick={() => remove.mutate(r.id)}>
                        {t('common.delete')}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        {isAdmin && (
          <select
            aria-label={t('inbox.rules.scope')}
            value={scope}
            onChange={(e) => setScope(e.target.value as 'user' | 'org')}
          >
            <option value="user">{t('inbox.rules.scope_user')}</option>
            <option value="org">{t('inbox.rules.scope_org')}</option>
          </select>
        )}{' '}
        <select
          aria-label={t('inbox.rules.add')}
          value={module}
          onChange={(e) => setModule(e.target.value as 'leads' | 'contacts')}
        >
          <option value="leads">{t('inbox.rules.module_leads')}</option>
          <option value="contacts">{t('inbox.rules.module_contacts')}</option>
        </select>{' '}
        <select
          aria-label={t('inbox.rules.when')}
          value={match}
          onChange={(e) => setMatch(e.target.value as 'domain' | 'keyword' | 'folder')}
        >
          <option value="domain">{t('inbox.rules.match_domain')}</option>
          <option value="keyword">{t('inbox.rules.match_keyword')}</option>
          <option value="folder">{t('inbox.rules.match_folder')}</option>
        </select>{' '}
        <input
          aria-label={t('inbox.rules.values')}
          placeholder={t('inbox.rules.valuesHint')}
          value={values}
          onChange={(e) => setValues(e.target.value)}
          required
        />{' '}
        <button type="submit" className="btn btn-small btn-primary" disabled={create.isPending}>
          {t('inbox.rules.create')}
        </button>
      </form>
      <ErrorBanner error={q.error ?? create.error ?? toggle.error ?? remove.error} />
    </section>
  );
}
