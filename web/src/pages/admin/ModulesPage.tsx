import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { ApiError, api, seg } from '../../api.ts';
import { ErrorBanner, FormRow, Loading, PageHeader } from '../../components/ui.tsx';
import { keys, useModuleMeta, useModules } from '../../queries.ts';
import { FIELD_TYPES, type Field, type FieldType, type ModuleInfo } from '../../types.ts';

export function ModulesPage() {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const modules = useModules();
  const [singular, setSingular] = useState('');
  const [plural, setPlural] = useState('');
  const create = useMutation({
    mutationFn: () => api.post<ModuleInfo>('/api/modules', { singularLabel: singular, pluralLabel: plural }),
    onSuccess: async () => {
      setSingular('');
      setPlural('');
      await qc.invalidateQueries({ queryKey: keys.modules });
    },
  });
  const errs = create.error instanceof ApiError ? create.error.fieldErrors() : {};
  return (
    <div>
      <PageHeader title={t('modules.title')} />
      <ErrorBanner error={modules.error} />
      {modules.isLoading ? (
        <Loading />
      ) : (
        <table className="data-table">
          <thead>
            <tr>
              <th>{t('modules.plural')}</th>
              <th>{t('modules.singular')}</th>
              <th>{t('modules.apiName')}</th>
              <th>{t('modules.kind')}</th>
            </tr>
          </thead>
          <tbody>
            {(modules.data ?? []).map((m) => (
              <tr key={m.id}>
                <td>
                  <Link to={`/settings/modules/${seg(m.apiName)}`}>{m.pluralLabel}</Link>
                </td>
                <td>{m.singularLabel}</td>
                <td>
                  <code>{m.apiName}</code>
                </td>
                <td>{m.isCustom ? t('modules.custom') : t('modules.builtin')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        className="card"
        aria-label={t('modules.create')}
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <h2>{t('modules.create')}</h2>
        <ErrorBanner error={create.error} />
        <div className="form-grid">
          <FormRow id="mod-singular" label={t('modules.singular')} required error={errs.singularLabel}>
            <input
              id="mod-singular"
              type="text"
              value={singular}
              onChange={(e) => setSingular(e.target.value)}
            />
          </FormRow>
          <FormRow id="mod-plural" label={t('modules.plural')} required error={errs.pluralLabel}>
            <input id="mod-plural" type="text" value={plural} onChange={(e) => setPlural(e.target.value)} />
          </FormRow>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={create.isPending}>
            {t('modules.createButton')}
          </button>
        </div>
      </form>
    </div>
  );
}

export function ModuleFieldsPage() {
  const { t } = useTranslation();
  const { module = '' } = useParams();
  const qc = useQueryClient();
  const meta = useModuleMeta(module);
  const modules = useModules();
  const [label, setLabel] = useState('');
  const [type, setType] = useState<FieldType>('text');
  const [required, setRequired] = useState(false);
  const [values, setValues] = useState('');
  const [target, setTarget] = useState('');

  const refresh = async () => {
    await qc.invalidateQueries({ queryKey: keys.module(module) });
    await qc.invalidateQueries({ queryKey: keys.records(module) });
  };
  const add = useMutation({
    mutationFn: () => {
      const options =
        type === 'picklist' || type === 'multi_picklist'
          ? {
              values: values
                .split('\n')
                .map((v) => v.trim())
                .filter(Boolean),
            }
          : type === 'lookup'
            ? { module: target || modules.data?.[0]?.apiName }
            : undefined;
      return api.post<Field>(`/api/modules/${seg(module)}/fields`, { label, type, required, options });
    },
    onSuccess: async () => {
      setLabel('');
      setValues('');
      setRequired(false);
      await refresh();
    },
  });
  const del = useMutation({
    mutationFn: (id: string) => api.del(`/api/modules/${seg(module)}/fields/${seg(id)}`),
    onSuccess: refresh,
  });
  const errs = add.error instanceof ApiError ? add.error.fieldErrors() : {};

  if (meta.error) return <ErrorBanner error={meta.error} />;
  if (!meta.data) return <Loading />;
  const fields = meta.data.fields;
  const moduleLabel = (name: string) => modules.data?.find((m) => m.apiName === name)?.pluralLabel ?? name;

  return (
    <div>
      <div className="breadcrumbs">
        <Link to="/settings/modules">{t('modules.title')}</Link> <span aria-hidden="true">/</span>{' '}
        {meta.data.module.pluralLabel}
      </div>
      <PageHeader title={t('modules.fieldsOf', { module: meta.data.module.pluralLabel })} />
      <ErrorBanner error={del.error} />
      <table className="data-table">
        <thead>
          <tr>
            <th>{t('fields.label')}</th>
            <th>{t('fields.apiName')}</th>
            <th>{t('fields.type')}</th>
            <th>{t('fields.details')}</th>
            <th>{t('fields.required')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {fields.map((f) => (
            <FieldRow
              key={f.apiName}
              module={module}
              field={f}
              details={
                f.type === 'lookup'
                  ? t('fields.pointsTo', { module: moduleLabel(f.options.module ?? '') })
                  : (f.options.values ?? []).join(', ')
              }
              onDelete={() =>
                f.id && window.confirm(t('fields.confirmDelete', { label: f.label })) && del.mutate(f.id)
              }
              onSaved={refresh}
            />
          ))}
        </tbody>
      </table>

      <form
        className="card"
        aria-label={t('fields.add')}
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <h2>{t('fields.add')}</h2>
        <ErrorBanner error={add.error} />
        <div className="form-grid">
          <FormRow id="nf-label" label={t('fields.label')} required error={errs.label}>
            <input id="nf-label" type="text" value={label} onChange={(e) => setLabel(e.target.value)} />
          </FormRow>
          <FormRow id="nf-type" label={t('fields.type')} error={errs.type}>
            <select id="nf-type" value={type} onChange={(e) => setType(e.target.value as FieldType)}>
              {FIELD_TYPES.map((ft) => (
                <option key={ft} value={ft}>
                  {t(`fieldTypes.${ft}`)}
                </option>
              ))}
            </select>
          </FormRow>
          {(type === 'picklist' || type === 'multi_picklist') && (
            <FormRow id="nf-values" label={t('fields.values')} required wide error={errs['options.values']}>
              <textarea
                id="nf-values"
                rows={5}
                placeholder={t('fields.valuesHelp')}
                value={values}
                onChange={(e) => setValues(e.target.value)}
              />
            </FormRow>
          )}
          {type === 'lookup' && (
            <FormRow id="nf-target" label={t('fields.target')} required error={errs['options.module']}>
              <select
                id="nf-target"
                value={target || modules.data?.[0]?.apiName || ''}
                onChange={(e) => setTarget(e.target.value)}
              >
                {(modules.data ?? []).map((m) => (
                  <option key={m.apiName} value={m.apiName}>
                    {m.pluralLabel}
                  </option>
                ))}
              </select>
            </FormRow>
          )}
          <div className="form-row">
            <label className="checkbox">
              <input type="checkbox" checked={required} onChange={(e) => setRequired(e.target.checked)} />{' '}
              {t('fields.required')}
            </label>
          </div>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={add.isPending}>
            {t('fields.addButton')}
          </button>
        </div>
      </form>
    </div>
  );
}

function FieldRow({
  module,
  field,
  details,
  onDelete,
  onSaved,
}: {
  module: string;
  field: Field;
  details: string;
  onDelete: () => void;
  onSaved: () => Promise<void>;
}) {
  const { t } = useTranslation();
  const [editing, setEditing] = useState(false);
  const [label, setLabel] = useState(field.label);
  const save = useMutation({
    mutationFn: () => api.patch<Field>(`/api/modules/${seg(module)}/fields/${seg(field.id!)}`, { label }),
    onSuccess: async () => {
      setEditing(false);
      await onSaved();
    },
  });
  return (
    <tr>
      <td>
        {editing ? (
          <form
            className="inline-edit"
            onSubmit={(e) => {
              e.preventDefault();
              save.mutate();
            }}
          >
            <input
              type="text"
              aria-label={t('fields.newLabel', { label: field.label })}
              value={label}
              onChange={(e) => setLabel(e.target.value)}
            />
            <button type="submit" className="btn btn-small btn-primary" disabled={save.isPending}>
              {t('common.save')}
            </button>
            <button type="button" className="btn btn-small" onClick={() => setEditing(false)}>
              {t('common.cancel')}
            </button>
            <ErrorBanner error={save.error} />
          </form>
        ) : (
          field.label
        )}
      </td>
      <td>
        <code>{field.apiName}</code>
      </td>
      <td>{t(`fieldTypes.${field.type}`)}</td>
      <td className="muted clip">{details}</td>
      <td>{field.required ? t('common.yes') : ''}</td>
      <td className="actions">
        {!field.system && field.id && !editing && (
          <button type="button" className="btn btn-small" onClick={() => setEditing(true)}>
            {t('fields.editLabel')}
          </button>
        )}
        {field.isCustom && field.id && (
          <button type="button" className="btn btn-small btn-danger" onClick={onDelete}>
            {t('common.delete')}
          </button>
        )}
        {field.system && <span className="badge badge-muted">{t('fields.system')}</span>}
      </td>
    </tr>
  );
}
