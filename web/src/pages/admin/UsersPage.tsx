import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, seg } from '../../api.ts';
import { ErrorBanner, FormRow, Loading, PageHeader } from '../../components/ui.tsx';
import { keys, useProfiles, useUsers } from '../../queries.ts';
import { useMe } from '../../session.tsx';
import type { User } from '../../types.ts';

export function UsersPage() {
  const { t } = useTranslation();
  const me = useMe();
  const qc = useQueryClient();
  const users = useUsers();
  const profiles = useProfiles();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [profileId, setProfileId] = useState('');
  const [invite, setInvite] = useState<{ email: string; url: string } | null>(null);

  const create = useMutation({
    mutationFn: () =>
      api.post<{ user: User; inviteUrl: string }>('/api/users', {
        email,
        name,
        profileId: profileId || profiles.data?.find((p) => !p.isAdmin)?.id || profiles.data?.[0]?.id,
      }),
    onSuccess: async (r) => {
      setInvite({ email: r.user.email, url: r.inviteUrl });
      setEmail('');
      setName('');
      await qc.invalidateQueries({ queryKey: keys.users });
    },
  });
  const update = useMutation({
    mutationFn: (v: { id: string; patch: Partial<Pick<User, 'name' | 'profileId' | 'status'>> }) =>
      api.patch<User>(`/api/users/${seg(v.id)}`, v.patch),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.users }),
  });
  const errs = create.error instanceof ApiError ? create.error.fieldErrors() : {};

  return (
    <div>
      <PageHeader title={t('users.title')} />
      <form
        className="card"
        aria-label={t('users.invite')}
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          setInvite(null);
          create.mutate();
        }}
      >
        <h2>{t('users.invite')}</h2>
        <ErrorBanner error={create.error} />
        <div className="form-grid three">
          <FormRow id="inv-email" label={t('users.email')} required error={errs.email}>
            <input id="inv-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} />
          </FormRow>
          <FormRow id="inv-name" label={t('users.name')} required error={errs.name}>
            <input id="inv-name" type="text" value={name} onChange={(e) => setName(e.target.value)} />
          </FormRow>
          <FormRow id="inv-profile" label={t('users.profile')} error={errs.profileId}>
            <select
              id="inv-profile"
              value={profileId || profiles.data?.find((p) => !p.isAdmin)?.id || ''}
              onChange={(e) => setProfileId(e.target.value)}
            >
              {(profiles.data ?? []).map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </FormRow>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={create.isPending}>
            {t('users.sendInvite')}
          </button>
        </div>
        {invite && (
          <div className="alert alert-success secret" role="status">
            <p>{t('users.inviteCreated', { email: invite.email })}</p>
            <label className="secret-value">
              {t('users.inviteLink')}
              <input type="text" readOnly value={invite.url} onFocus={(e) => e.target.select()} />
            </label>
            <button
              type="button"
              className="btn btn-small"
              onClick={() => navigator.clipboard?.writeText(invite.url)}
            >
              {t('common.copy')}
            </button>
          </div>
        )}
      </form>

      <ErrorBanner error={users.error ?? update.error} />
      {users.isLoading ? (
        <Loading />
      ) : (
        <table className="data-table">
          <thead>
            <tr>
              <th>{t('users.name')}</th>
              <th>{t('users.email')}</th>
              <th>{t('users.profile')}</th>
              <th>{t('users.status')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(users.data ?? []).map((u) => (
              <tr key={u.id}>
                <td>{u.name}</td>
                <td>{u.email}</td>
                <td>
                  <select
                    aria-label={t('users.profileOf', { name: u.name || u.email })}
                    value={u.profileId ?? ''}
                    disabled={u.id === me.user.id}
                    onChange={(e) => update.mutate({ id: u.id, patch: { profileId: e.target.value } })}
                  >
                    {(profiles.data ?? []).map((p) => (
                      <option key={p.id} value={p.id}>
                        {p.name}
                      </option>
                    ))}
                  </select>
                </td>
                <td>
                  <span className={`badge status-${u.status}`}>
                    {t(`users.statuses.${u.status}`, u.status)}
                  </span>
                </td>
                <td className="actions">
                  {u.id !== me.user.id && u.status === 'deactivated' && (
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={() => update.mutate({ id: u.id, patch: { status: 'active' } })}
                    >
                      {t('users.activate')}
                    </button>
                  )}
                  {u.id !== me.user.id && u.status !== 'deactivated' && (
                    <button
                      type="button"
                      className="btn btn-small btn-danger"
                      onClick={() =>
                        window.confirm(t('users.confirmDeactivate', { name: u.name || u.email })) &&
                        update.mutate({ id: u.id, patch: { status: 'deactivated' } })
                      }
                    >
                      {t('users.deactivate')}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
