import { useTranslation } from 'react-i18next';
import { useUsers } from '../queries.ts';
import type { Field, LookupRef } from '../types.ts';
import { LookupInput } from './LookupInput.tsx';

/** A select of the org's users (for user fields and owners). */
export function UserSelect({
  id,
  value,
  onChange,
  allowEmpty = true,
  invalid,
  describedBy,
}: {
  id: string;
  value: string;
  onChange: (v: string) => void;
  allowEmpty?: boolean;
  invalid?: boolean;
  describedBy?: string;
}) {
  const { t } = useTranslation();
  const users = useUsers();
  const list = (users.data ?? []).filter((u) => u.status !== 'deactivated' || u.id === value);
  return (
    <select
      id={id}
      value={value}
      onChange={(e) => onChange(e.target.value)}
      aria-invalid={invalid || undefined}
      aria-describedby={describedBy}
    >
      {allowEmpty && <option value="">{t('common.none')}</option>}
      {value && !list.some((u) => u.id === value) && <option value={value}>{value}</option>}
      {list.map((u) => (
        <option key={u.id} value={u.id}>
          {u.name || u.email}
        </option>
      ))}
    </select>
  );
}

/** The input for one field of a record form; the value is in the form's shape (see fields.ts). */
export function FieldInput({
  id,
  field,
  value,
  onChange,
  error,
}: {
  id: string;
  field: Field;
  value: unknown;
  onChange: (v: unknown) => void;
  error?: string;
}) {
  const { t } = useTranslation();
  const common = {
    id,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': error ? `${id}-error` : undefined,
    'aria-required': field.required || undefined,
  };
  const str = typeof value === 'string' ? value : '';
  switch (field.type) {
    case 'long_text':
      return <textarea {...common} rows={4} value={str} onChange={(e) => onChange(e.target.value)} />;
    case 'email':
      return <input {...common} type="email" value={str} onChange={(e) => onChange(e.target.value)} />;
    case 'phone':
      return <input {...common} type="tel" value={str} onChange={(e) => onChange(e.target.value)} />;
    case 'number':
    case 'currency':
      return (
        <input
          {...common}
          type="number"
          step="any"
          inputMode="decimal"
          value={str}
          onChange={(e) => onChange(e.target.value)}
        />
      );
    case 'date':
      return <input {...common} type="date" value={str} onChange={(e) => onChange(e.target.value)} />;
    case 'datetime':
      return (
        <input {...common} type="datetime-local" value={str} onChange={(e) => onChange(e.target.value)} />
      );
    case 'picklist': {
      const values = field.options.values ?? [];
      return (
        <select {...common} value={str} onChange={(e) => onChange(e.target.value)}>
          <option value="">{t('common.none')}</option>
          {str && !values.includes(str) && <option value={str}>{str}</option>}
          {values.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
      );
    }
    case 'multi_picklist': {
      const chosen = Array.isArray(value) ? (value as string[]) : [];
      return (
        <fieldset
          className="checkbox-group"
          aria-labelledby={`${id}-label`}
          aria-describedby={common['aria-describedby']}
        >
          {(field.options.values ?? []).map((v) => (
            <label key={v} className="checkbox">
              <input
                type="checkbox"
                checked={chosen.includes(v)}
                onChange={(e) => onChange(e.target.checked ? [...chosen, v] : chosen.filter((x) => x !== v))}
              />{' '}
              {v}
            </label>
          ))}
        </fieldset>
      );
    }
    case 'boolean':
      return (
        <input
          {...common}
          type="checkbox"
          className="checkbox-input"
          checked={value === true}
          onChange={(e) => onChange(e.target.checked)}
        />
      );
    case 'lookup':
      return (
        <LookupInput
          id={id}
          module={field.options.module ?? ''}
          value={(value as LookupRef | null) ?? null}
          onChange={onChange}
          invalid={!!error}
          describedBy={common['aria-describedby']}
        />
      );
    case 'user':
      return (
        <UserSelect
          id={id}
          value={str}
          onChange={onChange}
          invalid={!!error}
          describedBy={common['aria-describedby']}
        />
      );
    default:
      return <input {...common} type="text" value={str} onChange={(e) => onChange(e.target.value)} />;
  }
}
