import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { ApiError, api, seg } from '../api.ts';
import { FieldInput, UserSelect } from '../components/FieldInput.tsx';
import { ErrorBanner, FormRow, Loading, PageHeader } from '../components/ui.tsx';
import { editableFields, fromFormValue, toFormValue } from '../fields.ts';
import { keys, useModuleMeta } from '../queries.ts';
import { useFmt, useMe } from '../session.tsx';
import type { CrmRecord, Field, ModuleMeta } from '../types.ts';

/** Create (no :id) or edit a record. */
export function RecordFormPage() {
  const { module = '', id } = useParams();
  const meta = useModuleMeta(module);
  const record = useQuery({
    queryKey: keys.record(module, id ?? ''),
    queryFn: () => api.get<{ record: CrmRecord }>(`/api/modules/${seg(module)}/records/${seg(id!)}`),
    enabled: !!id,
  });
  if (meta.error || record.error) return <ErrorBanner error={meta.error ?? record.error} />;
  if (!meta.data || (id && !record.data)) return <Loading />;
  return <RecordForm key={`${module}/${id ?? 'new'}`} meta={meta.data} record={record.data?.record} />;
}

function RecordForm({ meta, record }: { meta: ModuleMeta; record?: CrmRecord }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const me = useMe();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const module = meta.module.apiName;
  const fields = editableFields(meta.fields);
  // The values as loaded, so that an edit sends only what changed (concurrent edits of other
  // fields are kept, and a stale lookup the user did not touch is not re-validated).
  const [initial] = useState<Record<string, unknown>>(() => {
    const v: Record<string, unknown> = {};
    for (const f of fields) v[f.apiName] = toFormValue(f, record?.data[f.apiName], record, fmt.timeZone);
    return v;
  });
  const [values, setValues] = useState<Record<string, unknown>>(() => {
    const v = { ...initial };
    // "New Contact" from an Account's page arrives with ?account_id=<id>&account_id_name=<name>.
    for (const f of fields) {
      const given = !record && params.get(f.apiName);
      if (given && f.type === 'lookup')
        v[f.apiName] = { id: given, displayName: params.get(`${f.apiName}_name`) ?? given };
    }
    return v;
  });
  const [ownerId, setOwnerId] = useState(record?.ownerId ?? me.user.id);
  const save = useMutation({
    mutationFn: () => {
      const data: Record<string, unknown> = {};
      for (const f of fields) {
        const v = fromFormValue(f, values[f.apiName], fmt.timeZone);
        if (
          record &&
          JSON.stringify(v) === JSON.stringify(fromFormValue(f, initial[f.apiName], fmt.timeZone))
        )
          continue;
        data[f.apiName] = v;
      }
      return record
        ? api.patch<CrmRecord>(`/api/modules/${seg(module)}/records/${seg(record.id)}`, {
            data,
            ...(ownerId !== record.ownerId ? { ownerId } : {}),
          })
        : api.post<CrmRecord>(`/api/modules/${seg(module)}/records`, { data, ownerId });
    },
    onSuccess: async (saved) => {
      await qc.invalidateQueries({ queryKey: keys.records(module) });
      await qc.invalidateQueries({ queryKey: keys.record(module, saved.id) });
      navigate(`/m/${seg(module)}/${seg(saved.id)}`);
    },
  });
  const errors = save.error instanceof ApiError ? save.error.fieldErrors() : {};
  const unplaced =
    save.error instanceof ApiError
      ? save.error.details.filter(
          (d) =>
            d.path &&
            !fields.some((f) => f.apiName === d.path?.replace(/^data\./, '')) &&
            d.path !== 'ownerId',
        )
      : [];
  const title = record
    ? t('record.editTitle', {
        module: meta.module.singularLabel,
        name: record.displayName || t('common.untitled'),
      })
    : t('record.newTitle', { module: meta.module.singularLabel });
  const cancelTo = record ? `/m/${seg(module)}/${seg(record.id)}` : `/m/${seg(module)}`;

  return (
    <div className="form-page">
      <PageHeader title={title} />
      <form
        className="record-form"
        noValidate
        aria-label={title}
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        {save.error && (
          <div className="alert alert-error" role="alert">
            {save.error.message}
            {unplaced.length > 0 && (
              <ul>
                {unplaced.map((d) => (
                  <li key={`${d.path}:${d.message}`}>{d.message}</li>
                ))}
              </ul>
            )}
          </div>
        )}
        <section className="form-section">
          <h2>{t('record.information', { module: meta.module.singularLabel })}</h2>
          <div className="form-grid">
            <FormRow id="f-owner" label={t('record.owner')} error={errors.ownerId}>
              <UserSelect id="f-owner" value={ownerId} onChange={setOwnerId} allowEmpty={false} />
            </FormRow>
            {fields.map((f: Field) => (
              <FormRow
                key={f.apiName}
                id={`f-${f.apiName}`}
                label={f.label}
                required={f.required}
                error={errors[f.apiName]}
                wide={f.type === 'long_text' || f.type === 'multi_picklist'}
              >
                <FieldInput
                  id={`f-${f.apiName}`}
                  field={f}
                  value={values[f.apiName]}
                  error={errors[f.apiName]}
                  onChange={(v) => setValues((s) => ({ ...s, [f.apiName]: v }))}
                />
              </FormRow>
            ))}
          </div>
        </section>
        <div className="form-actions sticky">
          <button type="submit" className="btn btn-primary" disabled={save.isPending}>
            {save.isPending ? t('common.saving') : t('common.save')}
          </button>
          <Link className="btn" to={cancelTo}>
            {t('common.cancel')}
          </Link>
        </div>
      </form>
    </div>
  );
}
