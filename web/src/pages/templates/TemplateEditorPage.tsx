import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { ApiError, api, seg } from '../../api.ts';
import { LookupInput } from '../../components/LookupInput.tsx';
import { ErrorBanner, FormRow, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { useModules } from '../../queries.ts';
import { useFmt } from '../../session.tsx';
import type { LookupRef } from '../../types.ts';
import { PreviewFrame } from './PreviewFrame.tsx';
import {
  type Rendered,
  type TemplateDetail,
  type TemplateVersion,
  templateKeys,
  useCanManageTemplates,
  useFolders,
  useMergeFields,
  useTemplate,
  useVersion,
  useVersions,
} from './queries.ts';
import './templates.css';
import { TemplatePerformance } from '../reports/TemplatePerformance.tsx';

interface Form {
  name: string;
  module: string;
  folderId: string;
  subject: string;
  htmlSource: string;
  text: string;
  fromAddress: string;
  fromName: string;
  replyTo: string;
  comment: string;
}

const EMPTY: Form = {
  name: '',
  module: 'leads',
  folderId: '',
  subject: '',
  htmlSource: '',
  text: '',
  fromAddress: '',
  fromName: '',
  replyTo: '',
  comment: '',
};

function formOf(tpl: TemplateDetail, v: TemplateVersion = tpl.current): Form {
  return {
    name: tpl.name,
    module: tpl.module,
    folderId: tpl.folderId ?? '',
    subject: v.subject,
    htmlSource: v.htmlSource,
    // A generated text is regenerated on save; only the author's own text is kept in the form.
    text: v.textGenerated ? '' : v.text,
    fromAddress: v.fromAddress ?? '',
    fromName: v.fromName ?? '',
    replyTo: v.replyTo ?? '',
    comment: '',
  };
}

const content = (f: Form) => ({
  subject: f.subject,
  htmlSource: f.htmlSource,
  text: f.text.trim() ? f.text : null,
  fromAddress: f.fromAddress.trim() || null,
  fromName: f.fromName.trim() || null,
  replyTo: f.replyTo.trim() || null,
});

/** /templates/new and /templates/:id */
export function TemplateEditorPage() {
  const { id } = useParams();
  const tpl = useTemplate(id);
  if (tpl.error) return <ErrorBanner error={tpl.error} />;
  if (id && !tpl.data) return <Loading />;
  return <TemplateEditor key={id ?? 'new'} template={tpl.data} />;
}

type FieldName = 'subject' | 'htmlSource' | 'text';

function TemplateEditor({ template }: { template?: TemplateDetail }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const modules = useModules();
  const folders = useFolders();
  const canManage = useCanManageTemplates() && (template?.canManage ?? true);
  const [form, setForm] = useState<Form>(() => (template ? formOf(template) : EMPTY));
  const [baseVersion, setBaseVersion] = useState(template?.currentVersion);
  const [saved, setSaved] = useState<number | null>(null);
  const [record, setRecord] = useState<LookupRef | null>(null);
  const [preview, setPreview] = useState<(Rendered & { sample: boolean }) | null>(null);
  const fields = useMergeFields(form.module);
  const [fieldPath, setFieldPath] = useState('');
  const lastFocus = useRef<FieldName>('htmlSource');
  const inputs = {
    subject: useRef<HTMLInputElement>(null),
    htmlSource: useRef<HTMLTextAreaElement>(null),
    text: useRef<HTMLTextAreaElement>(null),
  };
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm((f) => ({ ...f, [k]: v }));

  const save = useMutation({
    mutationFn: async () => {
      const body = {
        name: form.name,
        folderId: form.folderId || null,
        comment: form.comment.trim() || null,
        ...content(form),
      };
      if (!template) return api.post<TemplateDetail>('/api/templates', { ...body, module: form.module });
      return api.put<TemplateDetail>(`/api/templates/${seg(template.id)}`, { ...body, baseVersion });
    },
    onSuccess: async (r) => {
      await qc.invalidateQueries({ queryKey: templateKeys.all });
      await qc.invalidateQueries({ queryKey: templateKeys.folders });
      await qc.invalidateQueries({ queryKey: templateKeys.versions(r.id) });
      qc.setQueryData(templateKeys.one(r.id), r);
      if (!template) {
        navigate(`/templates/${seg(r.id)}`, { replace: true });
        return;
      }
      setBaseVersion(r.currentVersion);
      setSaved(r.currentVersion);
      setForm((f) => ({ ...f, comment: '' }));
    },
  });
  const runPreview = useMutation({
    mutationFn: () =>
      api.post<Rendered & { sample: boolean }>('/api/templates/preview', {
        module: form.module,
        recordId: record?.id ?? null,
        ...content(form),
      }),
    onSuccess: setPreview,
  });
  const remove = useMutation({
    mutationFn: () => api.del(`/api/templates/${seg(template!.id)}`),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: templateKeys.all });
      navigate('/templates', { replace: true });
    },
  });

  const insertField = () => {
    if (!fieldPath) return;
    const which = lastFocus.current;
    const el = inputs[which].current;
    const tag = `{{ ${fieldPath} }}`;
    const value = form[which];
    const start = el?.selectionStart ?? value.length;
    const end = el?.selectionEnd ?? value.length;
    set(which, value.slice(0, start) + tag + value.slice(end));
    requestAnimationFrame(() => {
      el?.focus();
      el?.setSelectionRange(start + tag.length, start + tag.length);
    });
  };

  const errs = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  const previewErrs = runPreview.error instanceof ApiError ? runPreview.error.fieldErrors() : {};
  const fieldError = (k: string) => errs[k] ?? previewErrs[k];
  const readable = (modules.data ?? []).filter((m) => m.access.read);
  const moduleLabel = readable.find((m) => m.apiName === form.module)?.singularLabel ?? form.module;
  const groups = [...new Set((fields.data?.fields ?? []).map((f) => f.group))];
  const disabled = !canManage;

  return (
    <div>
      <PageHeader
        title={template ? template.name : t('templates.new')}
        sub={
          <Link to="/templates" className="breadcrumbs">
            {t('templates.backToList')}
          </Link>
        }
        actions={
          template &&
          canManage && (
            <button
              type="button"
              className="btn btn-danger"
              onClick={() =>
                window.confirm(t('templates.confirmDelete', { name: template.name })) && remove.mutate()
              }
            >
              {t('common.delete')}
            </button>
          )
        }
      />
      <div className="tpl-editor">
        <form
          className="card"
          aria-label={t('templates.editor')}
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            setSaved(null);
            save.mutate();
          }}
        >
          <ErrorBanner error={save.error ?? remove.error} />
          {saved !== null && <Notice>{t('templates.savedVersion', { version: saved })}</Notice>}
          <fieldset disabled={disabled} className="tpl-fieldset">
            <div className="form-grid three">
              <FormRow id="tpl-name" label={t('templates.name')} required error={fieldError('name')}>
                <input
                  id="tpl-name"
                  type="text"
                  maxLength={200}
                  value={form.name}
                  onChange={(e) => set('name', e.target.value)}
                />
              </FormRow>
              <FormRow id="tpl-module" label={t('templates.module')} required error={fieldError('module')}>
                <select
                  id="tpl-module"
                  value={form.module}
                  disabled={!!template}
                  onChange={(e) => {
                    set('module', e.target.value);
                    setRecord(null);
                    setPreview(null);
                  }}
                >
                  {readable.map((m) => (
                    <option key={m.apiName} value={m.apiName}>
                      {m.pluralLabel}
                    </option>
                  ))}
                </select>
              </FormRow>
              <FormRow id="tpl-folder" label={t('templates.folder')} error={fieldError('folderId')}>
                <select
                  id="tpl-folder"
                  value={form.folderId}
                  onChange={(e) => set('folderId', e.target.value)}
                >
                  <option value="">{t('templates.noFolder')}</option>
                  {(folders.data ?? []).map((f) => (
                    <option key={f.id} value={f.id}>
                      {f.name}
                    </option>
                  ))}
                </select>
              </FormRow>
              <FormRow
                id="tpl-subject"
                label={t('templates.subject')}
                required
                wide
                error={fieldError('subject')}
              >
                <input
                  id="tpl-subject"
                  ref={inputs.subject}
                  type="text"
                  value={form.subject}
                  onFocus={() => {
                    lastFocus.current = 'subject';
                  }}
                  onChange={(e) => set('subject', e.target.value)}
                />
              </FormRow>
              <FormRow id="tpl-html" label={t('templates.htmlSource')} wide error={fieldError('htmlSource')}>
                <textarea
                  id="tpl-html"
                  ref={inputs.htmlSource}
                  className="tpl-code"
                  rows={16}
                  spellCheck={false}
                  value={form.htmlSource}
                  onFocus={() => {
                    lastFocus.current = 'htmlSource';
                  }}
                  onChange={(e) => set('htmlSource', e.target.value)}
                />
              </FormRow>
              <FormRow id="tpl-text" label={t('templates.text')} wide error={fieldError('text')}>
                <textarea
                  id="tpl-text"
                  ref={inputs.text}
                  className="tpl-code"
                  rows={6}
                  placeholder={t('templates.textPlaceholder')}
                  value={form.text}
                  onFocus={() => {
                    lastFocus.current = 'text';
                  }}
                  onChange={(e) => set('text', e.target.value)}
                />
              </FormRow>
              <FormRow id="tpl-from" label={t('templates.fromAddress')} error={fieldError('fromAddress')}>
                <input
                  id="tpl-from"
                  type="email"
                  value={form.fromAddress}
                  onChange={(e) => set('fromAddress', e.target.value)}
                />
              </FormRow>
              <FormRow id="tpl-from-name" label={t('templates.fromName')} error={fieldError('fromName')}>
                <input
                  id="tpl-from-name"
                  type="text"
                  maxLength={200}
                  value={form.fromName}
                  onChange={(e) => set('fromName', e.target.value)}
                />
              </FormRow>
              <FormRow id="tpl-reply-to" label={t('templates.replyTo')} error={fieldError('replyTo')}>
                <input
                  id="tpl-reply-to"
                  type="email"
                  value={form.replyTo}
                  onChange={(e) => set('replyTo', e.target.value)}
                />
              </FormRow>
              <FormRow id="tpl-comment" label={t('templates.comment')} wide error={fieldError('comment')}>
                <input
                  id="tpl-comment"
                  type="text"
                  maxLength={1000}
                  placeholder={t('templates.commentPlaceholder')}
                  value={form.comment}
                  onChange={(e) => set('comment', e.target.value)}
                />
              </FormRow>
            </div>
            {canManage && (
              <div className="form-actions">
                <button type="submit" className="btn btn-primary" disabled={save.isPending}>
                  {save.isPending
                    ? t('common.saving')
                    : template
                      ? t('templates.saveVersion')
                      : t('common.save')}
                </button>
              </div>
            )}
          </fieldset>
        </form>

        <div className="tpl-side">
          {canManage && (
            <section className="card" aria-label={t('templates.mergeFields')}>
              <h2>{t('templates.mergeFields')}</h2>
              <p className="muted">
                {t('templates.mergeHelp')}{' '}
                <code>{`{{ ${fields.data?.fields[0]?.path ?? 'lead.first_name'} | default: "…" }}`}</code>
              </p>
              <div className="inline-form">
                <select
                  aria-label={t('templates.mergeField')}
                  value={fieldPath}
                  onChange={(e) => setFieldPath(e.target.value)}
                >
                  <option value="">{t('templates.chooseField')}</option>
                  {groups.map((g) => (
                    <optgroup key={g} label={g}>
                      {(fields.data?.fields ?? [])
                        .filter((f) => f.group === g)
                        .map((f) => (
                          <option key={f.path} value={f.path}>
                            {f.label}
                          </option>
                        ))}
                    </optgroup>
                  ))}
                </select>
                <button type="button" className="btn btn-small" disabled={!fieldPath} onClick={insertField}>
                  {t('templates.insert')}
                </button>
              </div>
            </section>
          )}

          <section className="card" aria-label={t('templates.preview')}>
            <h2>{t('templates.preview')}</h2>
            <div className="inline-form">
              <LookupInput
                id="tpl-preview-record"
                module={form.module}
                value={record}
                onChange={setRecord}
                placeholder={t('templates.chooseRecord', { module: moduleLabel })}
              />
              <button
                type="button"
                className="btn btn-small"
                disabled={runPreview.isPending}
                onClick={() => runPreview.mutate()}
              >
                {t('templates.runPreview')}
              </button>
            </div>
            <ErrorBanner error={runPreview.error} />
            {preview && (
              <>
                {preview.sample && <p className="muted">{t('templates.sampleValues')}</p>}
                <PreviewFrame rendered={preview} label={t('templates.previewResult')} />
              </>
            )}
          </section>

          {template && (
            <Versions
              template={template}
              record={record}
              onRestore={(v) => {
                setForm((f) => ({ ...formOf(template, v), name: f.name, folderId: f.folderId }));
                setSaved(null);
              }}
              canManage={canManage}
            />
          )}
          {template && (
            <section className="card" aria-label={t('reports.names.templatePerformance')}>
              <h2>{t('reports.names.templatePerformance')}</h2>
              <TemplatePerformance templateId={template.id} />
            </section>
          )}
        </div>
      </div>
    </div>
  );
}

function Versions({
  template,
  record,
  onRestore,
  canManage,
}: {
  template: TemplateDetail;
  record: LookupRef | null;
  onRestore: (v: TemplateVersion) => void;
  canManage: boolean;
}) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const versions = useVersions(template.id);
  const [open, setOpen] = useState<number | null>(null);
  const version = useVersion(template.id, open);
  const merged = useMutation({
    mutationFn: (v: number) =>
      api.post<Rendered>(`/api/templates/${seg(template.id)}/preview`, { recordId: record!.id, version: v }),
  });
  return (
    <section className="card" aria-label={t('templates.versions')}>
      <h2>{t('templates.versions')}</h2>
      <ErrorBanner error={versions.error ?? version.error ?? merged.error} />
      <table className="data-table tpl-versions">
        <thead>
          <tr>
            <th>{t('templates.version')}</th>
            <th>{t('templates.savedAt')}</th>
            <th>{t('templates.author')}</th>
            <th>{t('templates.comment')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(versions.data ?? []).map((v) => (
            <tr key={v.version} className={open === v.version ? 'selected' : undefined}>
              <td>
                {fmt.integer(v.version)}
                {v.current && <span className="badge badge-ok">{t('templates.current')}</span>}
              </td>
              <td>{fmt.dateTime(v.createdAt)}</td>
              <td>{v.author?.name ?? ''}</td>
              <td className="pre-wrap">{v.comment ?? ''}</td>
              <td className="actions">
                <button
                  type="button"
                  className="btn btn-small"
                  aria-label={t('templates.viewVersion', { version: v.version })}
                  onClick={() => {
                    merged.reset();
                    setOpen(open === v.version ? null : v.version);
                  }}
                >
                  {t('templates.view')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {open !== null && version.data && (
        <div className="tpl-version-view">
          <h3>{t('templates.versionTitle', { version: version.data.version })}</h3>
          <div className="toolbar-buttons">
            <button
              type="button"
              className="btn btn-small"
              disabled={!record || merged.isPending}
              title={record ? undefined : t('templates.chooseRecordFirst')}
              onClick={() => merged.mutate(version.data.version)}
            >
              {t('templates.previewVersion')}
            </button>
            {canManage && (
              <button type="button" className="btn btn-small" onClick={() => onRestore(version.data)}>
                {t('templates.restore')}
              </button>
            )}
          </div>
          <PreviewFrame
            rendered={merged.data ?? version.data}
            label={t('templates.versionTitle', { version: version.data.version })}
          />
        </div>
      )}
    </section>
  );
}
