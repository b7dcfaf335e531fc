import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { seg } from '../api.ts';
import { isEmptyValue, recordValue } from '../fields.ts';
import { useUsers } from '../queries.ts';
import { useFmt } from '../session.tsx';
import type { CrmRecord, Field } from '../types.ts';

/** A user's name from their id (the record's owner name when it is the owner). */
function UserName({ id, fallback }: { id: string; fallback?: string | null }) {
  const users = useUsers();
  const u = users.data?.find((x) => x.id === id);
  return <>{u?.name || u?.email || fallback || id}</>;
}

/** One field's value of a record, formatted for reading. User text is rendered as text. */
export function FieldValue({ record, field }: { record: CrmRecord; field: Field }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const v = recordValue(record, field);
  if (field.type === 'boolean') return <>{v === true ? t('common.yes') : t('common.no')}</>;
  if (isEmptyValue(v)) return <span className="muted">—</span>;
  switch (field.type) {
    case 'email':
      return <a href={`mailto:${String(v)}`}>{String(v)}</a>;
    case 'phone':
      return <a href={`tel:${String(v).replace(/[^+0-9]/g, '')}`}>{String(v)}</a>;
    case 'number':
      return <>{fmt.number(v)}</>;
    case 'currency':
      return <>{fmt.currency(v)}</>;
    case 'date':
      return <>{fmt.date(v)}</>;
    case 'datetime':
      return <>{fmt.dateTime(v)}</>;
    case 'multi_picklist':
      return <>{(v as string[]).join(', ')}</>;
    case 'lookup': {
      const ref = record.lookups?.[field.apiName];
      const target = field.options.module;
      if (!ref || !target) return <span className="muted">{t('record.missingLookup')}</span>;
      return <Link to={`/m/${seg(target)}/${seg(ref.id)}`}>{ref.displayName || t('common.untitled')}</Link>;
    }
    case 'user':
      return <UserName id={String(v)} fallback={field.apiName === 'owner' ? record.ownerName : undefined} />;
    case 'long_text':
      return <span className="pre-wrap">{String(v)}</span>;
    default:
      return <>{String(v)}</>;
  }
}

/** A field's value as plain text (for links and compact places). */
export function plainValue(
  record: CrmRecord,
  field: Field,
  fmt: ReturnType<typeof useFmt>,
  userName: (id: string) => string | undefined,
  yesNo: [string, string],
): string {
  const v = recordValue(record, field);
  if (field.type === 'boolean') return v === true ? yesNo[0] : yesNo[1];
  if (isEmptyValue(v)) return '';
  switch (field.type) {
    case 'number':
      return fmt.number(v);
    case 'currency':
      return fmt.currency(v);
    case 'date':
      return fmt.date(v);
    case 'datetime':
      return fmt.dateTime(v);
    case 'multi_picklist':
      return (v as string[]).join(', ');
    case 'lookup':
      return record.lookups?.[field.apiName]?.displayName ?? '';
    case 'user':
      return userName(String(v)) ?? (field.apiName === 'owner' ? (record.ownerName ?? '') : '');
    default:
      return String(v);
  }
}
