import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { api, seg } from '../../api.ts';
import { ErrorBanner } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import type { Criteria } from '../../types.ts';

// Who a mass email goes to, before it is sent (F3.3): the live count, the people left out by
// reason, and the list behind each of those numbers, paged from the server.

export type Audience =
  | { kind: 'ids'; ids: string[] }
  | { kind: 'view'; viewId: string }
  | { kind: 'criteria'; criteria: Criteria };

/** What the list page hands to a new mass email (router state). */
export interface MassEmailSeed {
  module: string;
  audience: Audience;
}

export const REASONS = ['no_address', 'invalid_address', 'opted_out', 'suppressed', 'duplicate'] as const;
type Reason = (typeof REASONS)[number];

interface Counts {
  recipients: number;
  excluded: Record<string, number>;
  excludedTotal: number;
}
interface Person {
  recordId: string;
  email: string | null;
  name: string | null;
}

export const useAudienceCount = (module: string, audience: Audience | null) =>
  useQuery({
    queryKey: ['mass-audience', module, audience],
    queryFn: () => api.post<Counts>('/api/mass-emails/audience', { module, audience }),
    enabled: !!module && !!audience,
  });

/** The first person who would receive it: the record a template preview is merged with. */
export const useFirstRecipient = (module: string, audience: Audience | null) =>
  useQuery({
    queryKey: ['mass-audience-first', module, audience],
    queryFn: async () =>
      (
        await api.post<{ items: Person[] }>('/api/mass-emails/audience/list', {
          module,
          audience,
          reason: null,
          limit: 1,
        })
      ).items[0] ?? null,
    enabled: !!module && !!audience,
  });

/** The count and left-out reasons; each number opens the people behind it. */
export function AudienceSummary({ module, audience }: { module: string; audience: Audience | null }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const counts = useAudienceCount(module, audience);
  const [open, setOpen] = useState<Reason | 'recipients' | null>(null);
  if (!audience) return <p className="muted">{t('massmail.pickRecipients')}</p>;
  if (counts.error) return <ErrorBanner error={counts.error} />;
  if (!counts.data) return <p className="muted">{t('massmail.counting')}</p>;
  const c = counts.data;
  const toggle = (k: Reason | 'recipients') => setOpen(open === k ? null : k);
  return (
    <div className="mass-audience">
      <p data-testid="mass-count">
        <button type="button" className="btn btn-link" onClick={() => toggle('recipients')}>
          {t('bulk.willReceive', { n: fmt.integer(c.recipients) })}
        </button>
        {c.excludedTotal > 0 && (
          <>
            {' '}
            {t('bulk.leftOutBy')}{' '}
            {REASONS.filter((r) => (c.excluded[r] ?? 0) > 0).map((r, i) => (
              <span key={r}>
                {i > 0 && ', '}
                <button
                  type="button"
                  className="btn btn-link"
                  aria-expanded={open === r}
                  onClick={() => toggle(r)}
                >
                  {`${t(`bulk.exclusion.${r}`)}: ${fmt.integer(c.excluded[r])}`}
                </button>
              </span>
            ))}
          </>
        )}
      </p>
      {open && (
        <PeopleList
          module={module}
          audience={audience}
          reason={open === 'recipients' ? null : open}
          title={open === 'recipients' ? t('massmail.recipientsList') : t(`bulk.exclusion.${open}`)}
        />
      )}
    </div>
  );
}

function PeopleList({
  module,
  audience,
  reason,
  title,
}: {
  module: string;
  audience: Audience;
  reason: Reason | null;
  title: string;
}) {
  const { t } = useTranslation();
  const q = useInfiniteQuery({
    queryKey: ['mass-audience-list', module, audience, reason],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) =>
      api.post<{ items: Person[]; next: string | null }>('/api/mass-emails/audience/list', {
        module,
        audience,
        reason,
        limit: 50,
        ...(pageParam ? { after: pageParam } : {}),
      }),
    getNextPageParam: (last) => last.next,
  });
  const items = q.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="card" aria-label={title} data-testid="mass-people">
      <h3>{title}</h3>
      <ErrorBanner error={q.error} />
      <table className="data-table compact">
        <tbody>
          {items.map((p) => (
            <tr key={p.recordId}>
              <td>
                <Link to={`/m/${seg(module)}/${seg(p.recordId)}`}>{p.name || t('massmail.noName')}</Link>
              </td>
              <td>{p.email ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {q.hasNextPage && (
        <button
          type="button"
          className="btn btn-small"
          disabled={q.isFetchingNextPage}
          onClick={() => q.fetchNextPage()}
        >
          {t('massmail.more')}
        </button>
      )}
    </section>
  );
}
