import { useQueries, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, seg } from '../api.ts';
import { arityOf, conditionForApi, defaultPattern, defaultValue, operatorsFor } from '../fields.ts';
import { keys, useUsers } from '../queries.ts';
import type { Condition, Criteria, CrmRecord, Field, LookupRef, ModuleMeta } from '../types.ts';
import {
  conditionFromRow,
  EMAIL_STATUS_FIELD,
  EmailStatusOperator,
  EmailStatusWindow,
  emailStatusRow,
  rowFromCondition,
} from './EmailStatusCondition.tsx';
import { LookupInput } from './LookupInput.tsx';

interface Row extends Condition {
  key: number;
}

export interface FieldChoice {
  path: string; // api name, or lookupField.relatedField
  label: string;
  field: Field;
  group?: string;
}

/** The fields a condition may name: the module's own, and those of the records its lookups point at. */
export function useFilterFields(fields: Field[]): FieldChoice[] {
  const lookups = fields.filter((f) => f.type === 'lookup' && f.options.module);
  const related = useQueries({
    queries: lookups.map((f) => ({
      queryKey: keys.module(f.options.module!),
      queryFn: () => api.get<ModuleMeta>(`/api/modules/${seg(f.options.module!)}`),
      staleTime: 60_000,
    })),
  });
  const out: FieldChoice[] = fields.map((f) => ({ path: f.apiName, label: f.label, field: f }));
  lookups.forEach((lf, i) => {
    const meta = related[i]?.data;
    if (!meta) return;
    for (const f of meta.fields) {
      if (f.type === 'lookup') continue;
      out.push({
        path: `${lf.apiName}.${f.apiName}`,
        label: `${lf.label} → ${f.label}`,
        field: f,
        group: lf.label,
      });
    }
  });
  return out;
}

let nextKey = 1;
const toRows = (c: Criteria | null | undefined): Row[] =>
  (c?.conditions ?? []).map((x) => ({ ...rowFromCondition(x), key: nextKey++ }));

/** One chosen lookup id, shown by its record's name. */
function LookupChip({ module, id, onRemove }: { module: string; id: string; onRemove: () => void }) {
  const { t } = useTranslation();
  const r = useQuery({
    queryKey: ['record', module, id],
    queryFn: () => api.get<{ record: CrmRecord }>(`/api/modules/${seg(module)}/records/${seg(id)}`),
    staleTime: 60_000,
  });
  const name = r.data?.record.displayName ?? id.slice(0, 8);
  return (
    <span className="chip">
      {name}
      <button type="button" aria-label={t('filter.removeValue', { name })} onClick={onRemove}>
        ×
      </button>
    </span>
  );
}

function ValueEditor({
  row,
  choice,
  index,
  onChange,
}: {
  row: Row;
  choice: FieldChoice | undefined;
  index: number;
  onChange: (v: unknown) => void;
}) {
  const { t } = useTranslation();
  const users = useUsers();
  if (!choice) return null;
  const f = choice.field;
  const arity = arityOf(f.type, row.op);
  const label = t('filter.value', { n: index + 1 });
  const dateLike = f.type === 'date' || f.type === 'datetime';
  const numeric = f.type === 'number' || f.type === 'currency';
  const inputType = dateLike ? 'date' : numeric ? 'number' : 'text';
  switch (arity) {
    case 'none':
      return <span className="filter-novalue" />;
    case 'bool':
      return (
        <select
          aria-label={label}
          value={String(row.value === true)}
          onChange={(e) => onChange(e.target.value === 'true')}
        >
          <option value="true">{t('common.yes')}</option>
          <option value="false">{t('common.no')}</option>
        </select>
      );
    case 'days':
      return (
        <span className="filter-days">
          <input
            aria-label={label}
            type="number"
            min={1}
            step={1}
            value={String(row.value ?? '')}
            onChange={(e) => onChange(e.target.value)}
          />{' '}
          {t('filter.days')}
        </span>
      );
    case 'two': {
      const pair = Array.isArray(row.value) ? (row.value as unknown[]) : ['', ''];
      return (
        <span className="filter-two">
          <input
            aria-label={t('filter.from', { n: index + 1 })}
            type={inputType}
            step="any"
            value={String(pair[0] ?? '')}
            onChange={(e) => onChange([e.target.value, pair[1] ?? ''])}
          />
          <span>{t('filter.and')}</span>
          <input
            aria-label={t('filter.to', { n: index + 1 })}
            type={inputType}
            step="any"
            value={String(pair[1] ?? '')}
            onChange={(e) => onChange([pair[0] ?? '', e.target.value])}
          />
        </span>
      );
    }
    case 'list': {
      const list = Array.isArray(row.value) ? (row.value as string[]) : [];
      if (f.type === 'lookup') {
        const target = f.options.module ?? '';
        return (
          <span className="filter-lookup">
            {list.map((id) => (
              <LookupChip
                key={id}
                module={target}
                id={id}
                onRemove={() => onChange(list.filter((x) => x !== id))}
              />
            ))}
            <LookupInput
              id={`filter-value-${row.key}`}
              module={target}
              value={null}
              placeholder={t('filter.addRecord')}
              onChange={(r: LookupRef | null) => r && !list.includes(r.id) && onChange([...list, r.id])}
            />
          </span>
        );
      }
      const options: { value: string; label: string }[] =
        f.type === 'user'
          ? [
              { value: 'me', label: t('filter.me') },
              ...(users.data ?? []).map((u) => ({ value: u.id, label: u.name || u.email })),
            ]
          : (f.options.values ?? []).map((v) => ({ value: v, label: v }));
      return (
        <select
          aria-label={label}
          multiple
          size={Math.min(4, Math.max(options.length, 2))}
          value={list}
          onChange={(e) => onChange([...e.target.selectedOptions].map((o) => o.value))}
        >
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      );
    }
    default:
      return (
        <input
          aria-label={label}
          type={inputType}
          step="any"
          value={String(row.value ?? '')}
          onChange={(e) => onChange(e.target.value)}
        />
      );
  }
}

/** The advanced filter: conditions on fields, combined by a pattern such as "(1 and 2) or 3". */
export function FilterBuilder({
  fields,
  initial,
  onApply,
  onCancel,
}: {
  fields: Field[];
  initial: Criteria | null;
  onApply: (c: Criteria | null) => void;
  onCancel?: () => void;
}) {
  const { t } = useTranslation();
  const choices = useFilterFields(fields);
  const [rows, setRows] = useState<Row[]>(() => {
    const r = toRows(initial);
    return r.length ? r : [];
  });
  const [pattern, setPattern] = useState(initial?.pattern ?? '');
  const [patternEdited, setPatternEdited] = useState(!!initial?.pattern);
  const choiceOf = (path: string) => choices.find((c) => c.path === path);
  const effectivePattern = patternEdited ? pattern : defaultPattern(rows.length);

  const update = (key: number, patch: Partial<Row>) =>
    setRows((rs) => rs.map((r) => (r.key === key ? { ...r, ...patch } : r)));

  const addRow = () => {
    const first = choices.find((c) => !c.field.system) ?? choices[0];
    if (!first) return;
    const op = operatorsFor(first.field.type)[0];
    setRows((rs) => [
      ...rs,
      { key: nextKey++, field: first.path, op, value: defaultValue(first.field.type, op) },
    ]);
  };

  const removeRow = (key: number) => {
    setRows((rs) => rs.filter((r) => r.key !== key));
    setPatternEdited(false);
  };

  const apply = () => {
    if (rows.length === 0) return onApply(null);
    const conditions = rows.map(({ key: _k, ...c }) => {
      if (c.field === EMAIL_STATUS_FIELD) return conditionFromRow(c);
      const ch = choiceOf(c.field);
      return ch ? conditionForApi(ch.field.type, c) : c;
    });
    onApply({ conditions, pattern: effectivePattern });
  };

  const own = choices.filter((c) => !c.group);
  const groups = [...new Set(choices.filter((c) => c.group).map((c) => c.group!))];

  return (
    <form
      className="filter-builder"
      aria-label={t('filter.title')}
      onSubmit={(e) => {
        e.preventDefault();
        apply();
      }}
    >
      <h2>{t('filter.title')}</h2>
      {rows.length === 0 && <p className="muted">{t('filter.noConditions')}</p>}
      <ol className="filter-rows">
        {rows.map((row, i) => {
          const ch = choiceOf(row.field);
          const ops = ch ? operatorsFor(ch.field.type) : [];
          return (
            <li key={row.key} className="filter-row">
              <span className="filter-num">{i + 1}</span>
              <select
                aria-label={t('filter.field', { n: i + 1 })}
                value={row.field}
                onChange={(e) => {
                  if (e.target.value === EMAIL_STATUS_FIELD) return update(row.key, emailStatusRow());
                  const next = choiceOf(e.target.value);
                  if (!next) return;
                  const op = operatorsFor(next.field.type)[0];
                  update(row.key, { field: next.path, op, value: defaultValue(next.field.type, op) });
                }}
              >
                {!ch && row.field !== EMAIL_STATUS_FIELD && <option value={row.field}>{row.field}</option>}
                {own.map((c) => (
                  <option key={c.path} value={c.path}>
                    {c.label}
                  </option>
                ))}
                <option value={EMAIL_STATUS_FIELD}>{t('insights.criteria.field')}</option>
                {groups.map((g) => (
                  <optgroup key={g} label={g}>
                    {choices
                      .filter((c) => c.group === g)
                      .map((c) => (
                        <option key={c.path} value={c.path}>
                          {c.label}
                        </option>
                      ))}
                  </optgroup>
                ))}
              </select>
              {row.field === EMAIL_STATUS_FIELD ? (
                <>
                  <EmailStatusOperator index={i} value={row.op} onChange={(op) => update(row.key, { op })} />
                  <EmailStatusWindow
                    index={i}
                    value={row.value}
                    onChange={(value) => update(row.key, { value })}
                  />
                </>
              ) : (
                <>
                  <select
                    aria-label={t('filter.operator', { n: i + 1 })}
                    value={row.op}
                    onChange={(e) => {
                      const op = e.target.value;
                      const type = ch?.field.type ?? 'text';
                      const keep = arityOf(type, op) === arityOf(type, row.op);
                      update(row.key, { op, value: keep ? row.value : defaultValue(type, op) });
                    }}
                  >
                    {!ops.includes(row.op) && <option value={row.op}>{row.op}</option>}
                    {ops.map((op) => (
                      <option key={op} value={op}>
                        {t(`ops.${op}`)}
                      </option>
                    ))}
                  </select>
                  <ValueEditor
                    row={row}
                    choice={ch}
                    index={i}
                    onChange={(value) => update(row.key, { value })}
                  />
                </>
              )}
              <button
                type="button"
                className="btn btn-icon"
                aria-label={t('filter.remove', { n: i + 1 })}
                onClick={() => removeRow(row.key)}
              >
                ×
              </button>
            </li>
          );
        })}
      </ol>
      <div className="filter-footer">
        <button type="button" className="btn btn-link" onClick={addRow}>
          + {t('filter.addCondition')}
        </button>
        {rows.length > 1 && (
          <label className="filter-pattern">
            {t('filter.pattern')}{' '}
            <input
              type="text"
              value={effectivePattern}
              onChange={(e) => {
                setPattern(e.target.value);
                setPatternEdited(true);
              }}
            />
          </label>
        )}
      </div>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary">
          {t('filter.apply')}
        </button>
        <button
          type="button"
          className="btn"
          onClick={() => {
            setRows([]);
            setPatternEdited(false);
            onApply(null);
          }}
        >
          {t('filter.clear')}
        </button>
        {onCancel && (
          <button type="button" className="btn" onClick={onCancel}>
            {t('common.cancel')}
          </button>
        )}
      </div>
    </form>
  );
}
