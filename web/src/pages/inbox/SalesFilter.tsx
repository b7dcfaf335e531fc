import { useQueries } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../../api.ts';
import { FilterBuilder } from '../../components/FilterBuilder.tsx';
import { keys, useModuleMeta, useModules } from '../../queries.ts';
import type { Criteria, ModuleMeta } from '../../types.ts';
import type { SalesCondition } from './inbox-api.ts';

// The sales condition of the SalesInbox filter: the linked Lead or Contact matches criteria (the
// list page's filter editor), optionally through a record that points at it (Deals → Contact Name).

const LINKED = ['leads', 'contacts'];

export function SalesFilter({
  value,
  onChange,
}: {
  value: SalesCondition | null;
  onChange: (c: SalesCondition | null) => void;
}) {
  const { t } = useTranslation();
  const modules = useModules();
  const readable = (modules.data ?? []).filter((m) => m.access.read);
  const [module, setModule] = useState(value?.module ?? '');
  const [role, setRole] = useState<'from' | 'to' | 'any'>(value?.role ?? 'any');
  const [through, setThrough] = useState(
    value?.related ? `${value.related.module}.${value.related.field}` : '',
  );
  const metas = useQueries({
    queries: readable.map((m) => ({
      queryKey: keys.module(m.apiName),
      queryFn: () => api.get<ModuleMeta>(`/api/modules/${seg(m.apiName)}`),
      staleTime: 60_000,
    })),
  });
  // Lookups of other modules that point at the chosen one.
  const lookups = module
    ? metas.flatMap((q) =>
        (q.data?.fields ?? [])
          .filter((f) => f.type === 'lookup' && f.options.module === module)
          .map((f) => ({
            key: `${q.data!.module.apiName}.${f.apiName}`,
            label: t('inbox.sales.throughOption', { module: q.data!.module.pluralLabel, field: f.label }),
          })),
      )
    : [];
  const [relModule, relField] = through ? through.split('.') : ['', ''];
  const own = useModuleMeta(module || undefined);
  const rel = useModuleMeta(relModule || undefined);
  const editing = relModule ? rel.data : own.data;

  const apply = (criteria: Criteria | null) => {
    if (!module) return onChange(null);
    onChange(
      relModule
        ? { module, role, related: { module: relModule, field: relField, criteria } }
        : { module, role, criteria },
    );
  };

  return (
    <fieldset className="sales-filter">
      <legend>{t('inbox.sales.title')}</legend>
      <div className="sales-filter-row">
        <label>
          {t('inbox.sales.module')}{' '}
          <select
            value={module}
            onChange={(e) => {
              setModule(e.target.value);
              setThrough('');
              if (!e.target.value) onChange(null);
            }}
          >
            <option value="">{t('inbox.sales.none')}</option>
            {readable
              .filter((m) => LINKED.includes(m.apiName))
              .map((m) => (
                <option key={m.apiName} value={m.apiName}>
                  {m.pluralLabel}
                </option>
              ))}
          </select>
        </label>
        {module && (
          <>
            <label>
              {t('inbox.sales.role')}{' '}
              <select value={role} onChange={(e) => setRole(e.target.value as 'from' | 'to' | 'any')}>
                <option value="any">{t('inbox.sales.roleAny')}</option>
                <option value="from">{t('inbox.sales.roleFrom')}</option>
                <option value="to">{t('inbox.sales.roleTo')}</option>
              </select>
            </label>
            <label>
              {t('inbox.sales.through')}{' '}
              <select value={through} onChange={(e) => setThrough(e.target.value)}>
                <option value="">{t('inbox.sales.throughNone')}</option>
                {lookups.map((l) => (
                  <option key={l.key} value={l.key}>
                    {l.label}
                  </option>
                ))}
              </select>
            </label>
          </>
        )}
      </div>
      {module && editing && (
        <FilterBuilder
          key={`${module}/${through}`}
          fields={editing.fields}
          initial={(relModule ? value?.related?.criteria : value?.criteria) ?? null}
          onApply={apply}
        />
      )}
    </fieldset>
  );
}
