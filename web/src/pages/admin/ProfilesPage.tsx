import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { keys, useModules, useProfiles } from '../../queries.ts';
import type { ModuleInfo, ModulePermission, Permissions, Profile } from '../../types.ts';

const ACTIONS: (keyof ModulePermission)[] = ['read', 'create', 'edit', 'delete', 'mass_email'];

export function ProfilesPage() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const profiles = useProfiles();
  const modules = useModules();
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [newName, setNewName] = useState('');
  const create = useMutation({
    mutationFn: () => api.post<Profile>('/api/profiles', { name: newName, permissions: { modules: {} } }),
    onSuccess: async (p) => {
      setNewName('');
      await qc.invalidateQueries({ queryKey: keys.profiles });
      setSelectedId(p.id);
    },
  });
  if (profiles.error) return <ErrorBanner error={profiles.error} />;
  if (!profiles.data || !modules.data) return <Loading />;
  const selected = profiles.data.find((p) => p.id === selectedId) ?? profiles.data[0];
  return (
    <div>
      <PageHeader title={t('profiles.title')} />
      <div className="split">
        <div className="card list-card">
          <ul className="pick-list">
            {profiles.data.map((p) => (
              <li key={p.id}>
                <button
                  type="button"
                  className={p.id === selected?.id ? 'active' : undefined}
                  aria-current={p.id === selected?.id || undefined}
                  onClick={() => setSelectedId(p.id)}
                >
                  {p.name}
                  {p.isAdmin && <span className="badge">{t('profiles.admin')}</span>}
                </button>
              </li>
            ))}
          </ul>
          <form
            className="stack"
            aria-label={t('profiles.create')}
            onSubmit={(e) => {
              e.preventDefault();
              create.mutate();
            }}
          >
            <label htmlFor="new-profile">{t('profiles.newName')}</label>
            <input
              id="new-profile"
              type="text"
              value={newName}
              onChange={(e) => setNewName(e.target.value)}
            />
            <button type="submit" className="btn" disabled={!newName.trim() || create.isPending}>
              {t('profiles.create')}
            </button>
            <ErrorBanner error={create.error} />
          </form>
        </div>
        {selected && (
          <ProfileEditor
            key={selected.id}
            profile={selected}
            modules={modules.data}
            onDeleted={() => setSelectedId(null)}
          />
        )}
      </div>
    </div>
  );
}

function ProfileEditor({
  profile,
  modules,
  onDeleted,
}: {
  profile: Profile;
  modules: ModuleInfo[];
  onDeleted: () => void;
}) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [name, setName] = useState(profile.name);
  const [isAdmin, setIsAdmin] = useState(profile.isAdmin);
  const [perms, setPerms] = useState<Permissions>(() => structuredClone(profile.permissions ?? {}));
  const [saved, setSaved] = useState(false);
  const save = useMutation({
    mutationFn: () =>
      api.patch<Profile>(`/api/profiles/${seg(profile.id)}`, { name, isAdmin, permissions: perms }),
    onSuccess: async () => {
      setSaved(true);
      await qc.invalidateQueries({ queryKey: keys.profiles });
    },
  });
  const del = useMutation({
    mutationFn: () => api.del(`/api/profiles/${seg(profile.id)}`),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: keys.profiles });
      onDeleted();
    },
  });
  const set = (module: string, action: keyof ModulePermission, on: boolean) => {
    setSaved(false);
    setPerms((p) => {
      const cur = { ...(p.modules?.[module] ?? {}) };
      cur[action] = on;
      if (on && action !== 'read') cur.read = true; // changing records needs reading them
      if (!on && action === 'read') for (const a of ACTIONS) cur[a] = false;
      return { ...p, modules: { ...(p.modules ?? {}), [module]: cur } };
    });
  };
  return (
    <form
      className="card grow"
      aria-label={t('profiles.edit', { name: profile.name })}
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <h2>{profile.name}</h2>
      {saved && <Notice>{t('profiles.saved')}</Notice>}
      <ErrorBanner error={save.error ?? del.error} />
      <div className="form-grid">
        <div className="form-row">
          <label htmlFor="profile-name">{t('profiles.name')}</label>
          <input id="profile-name" type="text" value={name} onChange={(e) => setName(e.target.value)} />
        </div>
        <div className="form-row checks">
          <label className="checkbox">
            <input type="checkbox" checked={isAdmin} onChange={(e) => setIsAdmin(e.target.checked)} />{' '}
            {t('profiles.isAdmin')}
          </label>
          <label className="checkbox">
            <input
              type="checkbox"
              checked={perms.manage_templates === true}
              onChange={(e) => setPerms((p) => ({ ...p, manage_templates: e.target.checked }))}
            />{' '}
            {t('profiles.manageTemplates')}
          </label>
        </div>
      </div>
      {isAdmin && <p className="muted">{t('profiles.adminHelp')}</p>}
      <table className="data-table compact perm-table">
        <thead>
          <tr>
            <th>{t('profiles.module')}</th>
            {ACTIONS.map((a) => (
              <th key={a}>{t(`profiles.actions.${a}`)}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {modules.map((m) => (
            <tr key={m.apiName}>
              <td>{m.pluralLabel}</td>
              {ACTIONS.map((a) => (
                <td key={a}>
                  <input
                    type="checkbox"
                    aria-label={t('profiles.permission', {
                      module: m.pluralLabel,
                      action: t(`profiles.actions.${a}`),
                    })}
                    disabled={isAdmin}
                    checked={isAdmin || perms.modules?.[m.apiName]?.[a] === true}
                    onChange={(e) => set(m.apiName, a, e.target.checked)}
                  />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>
          {t('common.save')}
        </button>
        <button
          type="button"
          className="btn btn-danger"
          onClick={() => window.confirm(t('profiles.confirmDelete', { name: profile.name })) && del.mutate()}
        >
          {t('common.delete')}
        </button>
      </div>
    </form>
  );
}
