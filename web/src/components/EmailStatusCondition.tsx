import { useTranslation } from 'react-i18next';
import { CRITERIA_STATUSES, STATUS_WINDOWS } from '../../../src/tracking/status.ts';
import type { Condition } from '../types.ts';

// Email status in the filter editor (F4.8). The API's condition is `{ kind: 'email_status', status,
// when?, days? }`; in the editor's rows it is a pseudo field whose operator is the status and whose
// value is the time window, so that it sits among field conditions and numbers like them in the pattern.

export const EMAIL_STATUS_FIELD = '@email_status';

interface Window {
  when: string;
  days: string;
}

type KindCondition = { kind: string; status?: unknown; when?: unknown; days?: unknown };

const isKind = (c: unknown): c is KindCondition =>
  typeof c === 'object' && c !== null && (c as KindCondition).kind === 'email_status';

/** A condition from the API as an editor row (other conditions pass through). */
export function rowFromCondition(c: Condition): Condition {
  if (!isKind(c)) return c;
  return {
    field: EMAIL_STATUS_FIELD,
    op: String(c.status ?? CRITERIA_STATUSES[0]),
    value: { when: typeof c.when === 'string' ? c.when : '', days: c.days ? String(c.days) : '' },
  };
}

/** An editor row as the API's condition. */
export function conditionFromRow(c: Condition): Condition {
  const w = (c.value ?? { when: '', days: '' }) as Window;
  const days = w.when.endsWith('_n_days') ? Number(w.days) : undefined;
  return {
    kind: 'email_status',
    status: c.op,
    ...(w.when ? { when: w.when } : {}),
    ...(days !== undefined ? { days } : {}),
  } as unknown as Condition;
}

export const emailStatusRow = (): Condition => ({
  field: EMAIL_STATUS_FIELD,
  op: 'opened',
  value: { when: '', days: '' },
});

export function EmailStatusOperator({
  index,
  value,
  onChange,
}: {
  index: number;
  value: string;
  onChange: (op: string) => void;
}) {
  const { t } = useTranslation();
  return (
    <select
      aria-label={t('filter.operator', { n: index + 1 })}
      value={value}
      onChange={(e) => onChange(e.target.value)}
    >
      {CRITERIA_STATUSES.map((s) => (
        <option key={s} value={s}>
          {t(`insights.criteria.status.${s}`)}
        </option>
      ))}
    </select>
  );
}

export function EmailStatusWindow({
  index,
  value,
  onChange,
}: {
  index: number;
  value: unknown;
  onChange: (v: Window) => void;
}) {
  const { t } = useTranslation();
  const w = (value ?? { when: '', days: '' }) as Window;
  return (
    <span className="filter-days">
      <select
        aria-label={t('filter.value', { n: index + 1 })}
        value={w.when}
        onChange={(e) => onChange({ when: e.target.value, days: w.days || '2' })}
      >
        <option value="">{t('insights.criteria.anyTime')}</option>
        {STATUS_WINDOWS.map((s) => (
          <option key={s} value={s}>
            {t(`insights.criteria.when.${s}`)}
          </option>
        ))}
      </select>
      {w.when.endsWith('_n_days') && (
        <>
          {' '}
          <input
            aria-label={t('insights.criteria.days', { n: index + 1 })}
            type="number"
            min={1}
            step={1}
            value={w.days}
            onChange={(e) => onChange({ ...w, days: e.target.value })}
          />{' '}
          {t('filter.days')}
        </>
      )}
    </span>
  );
}
