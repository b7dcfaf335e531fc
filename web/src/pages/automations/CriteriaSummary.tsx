import type { TFunction } from 'i18next';
import { useTranslation } from 'react-i18next';
import { type FieldChoice, useFilterFields } from '../../components/FilterBuilder.tsx';
import { arityOf } from '../../fields.ts';
import type { Formatter } from '../../format.ts';
import { useModuleMeta, useUsers } from '../../queries.ts';
import { useFmt } from '../../session.tsx';
import type { Condition, Criteria, User } from '../../types.ts';

// A rule's criteria in words ("Lead Source is Web Download; Rating is Active"), for the list of
// rules and under the filter editor, so that what a rule matches can be read without opening it.

interface StatusCondition {
  kind: 'email_status';
  status: string;
  when?: string;
  days?: number;
}

function valueText(
  c: Condition,
  choice: FieldChoice | undefined,
  t: TFunction,
  fmt: Formatter,
  users: User[],
): string {
  const type = choice?.field.type ?? 'text';
  const one = (v: unknown): string => {
    if (v === null || v === undefined) return '';
    if (type === 'date') return fmt.date(v);
    if (type === 'datetime') return fmt.dateTime(v);
    if (type === 'number') return fmt.number(v);
    if (type === 'currency') return fmt.currency(v);
    if (type === 'user')
      return v === 'me' ? t('filter.me') : (users.find((u) => u.id === v)?.name ?? String(v));
    return String(v);
  };
  const list = Array.isArray(c.value) ? c.value : [c.value];
  switch (arityOf(type, c.op)) {
    case 'none':
      return '';
    case 'bool':
      return c.value ? t('common.yes') : t('common.no');
    case 'two':
      return `${one(list[0])} ${t('filter.and')} ${one(list[1])}`;
    case 'days':
      return `${fmt.integer(Number(c.value))} ${t('filter.days')}`;
    case 'list':
      return type === 'lookup' ? t('automations.records', { count: list.length }) : list.map(one).join(', ');
    default:
      return one(c.value);
  }
}

function statusText(c: StatusCondition, t: TFunction, fmt: Formatter): string {
  const when = !c.when
    ? t('insights.criteria.anyTime')
    : c.when.endsWith('_n_days')
      ? t(`automations.statusWhen.${c.when}`, { count: c.days ?? 0, n: fmt.integer(c.days ?? 0) })
      : t(`insights.criteria.when.${c.when}`);
  return `${t('insights.criteria.field')}: ${t(`insights.criteria.status.${c.status}`)} ${when}`;
}

export function CriteriaSummary({ module, criteria }: { module: string; criteria: Criteria | null }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const meta = useModuleMeta(module || undefined);
  const choices = useFilterFields(meta.data?.fields ?? []);
  const users = useUsers();
  const conditions = criteria?.conditions ?? [];
  if (conditions.length === 0) return <span className="muted">{t('automations.everyRecord')}</span>;
  const parts = conditions.map((c, i) => {
    const s = c as unknown as StatusCondition;
    if (s.kind === 'email_status') return `${i + 1}. ${statusText(s, t, fmt)}`;
    const ch = choices.find((x) => x.path === c.field);
    const v = valueText(c, ch, t, fmt, users.data ?? []);
    return `${i + 1}. ${ch?.label ?? c.field} ${t(`ops.${c.op}`)}${v ? ` ${v}` : ''}`;
  });
  return (
    <span className="criteria-summary">
      {parts.join('; ')}
      {conditions.length > 1 && criteria?.pattern && (
        <span className="muted"> ({t('automations.pattern', { pattern: criteria.pattern })})</span>
      )}
    </span>
  );
}
