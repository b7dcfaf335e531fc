import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner, Loading, PageHeader } from '../../components/ui.tsx';
import { useModules } from '../../queries.ts';
import { useFmt } from '../../session.tsx';
import {
  type TemplateFolder,
  templateKeys,
  useCanManageTemplates,
  useFolders,
  useTemplates,
} from './queries.ts';
import './templates.css';

/** Templates by module and folder, with a search by name; folders are managed here too. */
export function TemplatesPage() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const canManage = useCanManageTemplates();
  const modules = useModules();
  const folders = useFolders();
  const [module, setModule] = useState('');
  const [folderId, setFolderId] = useState('');
  const [q, setQ] = useState('');
  const templates = useTemplates({ module, folderId, q });
  const [newFolder, setNewFolder] = useState('');

  const refresh = async () => {
    await qc.invalidateQueries({ queryKey: templateKeys.folders });
    await qc.invalidateQueries({ queryKey: templateKeys.all });
  };
  const createFolder = useMutation({
    mutationFn: () => api.post<TemplateFolder>('/api/template-folders', { name: newFolder }),
    onSuccess: async () => {
      setNewFolder('');
      await refresh();
    },
  });
  const renameFolder = useMutation({
    mutationFn: (v: { id: string; name: string }) =>
      api.patch(`/api/template-folders/${seg(v.id)}`, { name: v.name }),
    onSuccess: refresh,
  });
  const deleteFolder = useMutation({
    mutationFn: (id: string) => api.del(`/api/template-folders/${seg(id)}`),
    onSuccess: async () => {
      setFolderId('');
      await refresh();
    },
  });
  const readable = (modules.data ?? []).filter((m) => m.access.read);
  const moduleLabel = (name: string) => readable.find((m) => m.apiName === name)?.pluralLabel ?? name;

  return (
    <div>
      <PageHeader
        title={t('templates.title')}
        actions={
          canManage && (
            <Link className="btn btn-primary" to="/templates/new">
              {t('templates.new')}
            </Link>
          )
        }
      />
      <div className="tpl-layout">
        <nav className="side-nav" aria-label={t('templates.folders')}>
          <h2>{t('templates.folders')}</h2>
          <button
            type="button"
            className={`btn-link${folderId === '' ? ' active' : ''}`}
            onClick={() => setFolderId('')}
          >
            {t('templates.allFolders')}
          </button>
          <button
            type="button"
            className={`btn-link${folderId === 'none' ? ' active' : ''}`}
            onClick={() => setFolderId('none')}
          >
            {t('templates.noFolder')}
          </button>
          {(folders.data ?? []).map((f) => (
            <div key={f.id} className="tpl-folder">
              <button
                type="button"
                className={`btn-link${folderId === f.id ? ' active' : ''}`}
                onClick={() => setFolderId(f.id)}
              >
                {t('templates.folderWithCount', { name: f.name, count: f.templateCount })}
              </button>
              {canManage && (
                <span className="tpl-folder-actions">
                  <button
                    type="button"
                    className="btn-link"
                    aria-label={t('templates.renameFolder', { name: f.name })}
                    onClick={() => {
                      const name = window.prompt(t('templates.folderName'), f.name);
                      if (name?.trim()) renameFolder.mutate({ id: f.id, name: name.trim() });
                    }}
                  >
                    {t('common.edit')}
                  </button>
                  <button
                    type="button"
                    className="btn-danger-link"
                    aria-label={t('templates.deleteFolder', { name: f.name })}
                    onClick={() =>
                      window.confirm(t('templates.confirmDeleteFolder', { name: f.name })) &&
                      deleteFolder.mutate(f.id)
                    }
                  >
                    {t('common.delete')}
                  </button>
                </span>
              )}
            </div>
          ))}
          {canManage && (
            <form
              className="tpl-new-folder"
              onSubmit={(e) => {
                e.preventDefault();
                if (newFolder.trim()) createFolder.mutate();
              }}
            >
              <input
                type="text"
                aria-label={t('templates.folderName')}
                placeholder={t('templates.newFolder')}
                value={newFolder}
                maxLength={100}
                onChange={(e) => setNewFolder(e.target.value)}
              />
              <button type="submit" className="btn btn-small" disabled={createFolder.isPending}>
                {t('templates.addFolder')}
              </button>
            </form>
          )}
        </nav>
        <div>
          <ErrorBanner
            error={
              templates.error ??
              folders.error ??
              createFolder.error ??
              renameFolder.error ??
              deleteFolder.error
            }
          />
          <div className="toolbar">
            <div className="toolbar-buttons">
              <select
                aria-label={t('templates.module')}
                value={module}
                onChange={(e) => setModule(e.target.value)}
              >
                <option value="">{t('templates.allModules')}</option>
                {readable.map((m) => (
                  <option key={m.apiName} value={m.apiName}>
                    {m.pluralLabel}
                  </option>
                ))}
              </select>
              <input
                type="search"
                aria-label={t('templates.search')}
                placeholder={t('templates.search')}
                value={q}
                onChange={(e) => setQ(e.target.value)}
              />
            </div>
          </div>
          {templates.isLoading ? (
            <Loading />
          ) : (templates.data ?? []).length === 0 ? (
            <p className="muted">{t('templates.empty')}</p>
          ) : (
            <table className="data-table">
              <thead>
                <tr>
                  <th>{t('templates.name')}</th>
                  <th>{t('templates.module')}</th>
                  <th>{t('templates.folder')}</th>
                  <th>{t('templates.subject')}</th>
                  <th>{t('templates.version')}</th>
                  <th>{t('templates.updated')}</th>
                </tr>
              </thead>
              <tbody>
                {(templates.data ?? []).map((tpl) => (
                  <tr key={tpl.id}>
                    <td>
                      <Link to={`/templates/${seg(tpl.id)}`}>{tpl.name}</Link>
                    </td>
                    <td>{moduleLabel(tpl.module)}</td>
                    <td>{tpl.folderName ?? ''}</td>
                    <td className="tpl-subject-cell">{tpl.subject}</td>
                    <td>{fmt.integer(tpl.currentVersion)}</td>
                    <td>{fmt.dateTime(tpl.updatedAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      </div>
    </div>
  );
}
