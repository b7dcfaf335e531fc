import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, api, seg } from '../../api.ts';
import { ErrorBanner, FormRow, Loading, Notice, PageHeader } from '../../components/ui.tsx';
import { useFmt } from '../../session.tsx';
import './dropbox.css';

// BCC Dropbox (admins): the org's inbound address to BCC, the senders whose mail is attached
// automatically, and the unmatched emails to assign to Leads/Contacts or discard.

interface Sender {
  id: string;
  email: string;
  verified: boolean;
  userName: string | null;
  verifySentAt: string | null;
  createdAt: string;
}
interface Dropbox {
  address: string;
  createdAt: string;
  senders: Sender[];
}
interface Addr {
  address: string;
  name?: string | null;
}
interface Item {
  id: string;
  mailId: string | null;
  envelopeFrom: string;
  fromAddress: string | null;
  fromName: string | null;
  subject: string;
  date: string;
  receivedAt: string;
  spf: string;
  spfDetail: string | null;
  dkim: string;
  dkimDomain: string | null;
  dkimDetail: string | null;
  reason: 'unverified_sender' | 'no_record' | null;
  to: Addr[];
  cc: Addr[];
  snippet: string;
  records: { id: string; module: string; displayName: string }[];
}
type State = 'unmatched' | 'attached' | 'discarded';
const STATES: State[] = ['unmatched', 'attached', 'discarded'];
interface Found {
  id: string;
  displayName: string;
}

const KEY = ['dropbox'] as const;

export function DropboxPage() {
  const { t } = useTranslation();
  const q = useQuery({ queryKey: KEY, queryFn: () => api.get<Dropbox>('/api/admin/dropbox') });
  return (
    <div>
      <PageHeader title={t('dropbox.title')} sub={t('dropbox.intro')} />
      <ErrorBanner error={q.error} />
      {q.isLoading || !q.data ? (
        !q.error && <Loading />
      ) : (
        <>
          <AddressCard address={q.data.address} />
          <Senders senders={q.data.senders} />
          <Unmatched />
        </>
      )}
    </div>
  );
}

function AddressCard({ address }: { address: string }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [copied, setCopied] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const regenerate = useMutation({
    mutationFn: () => api.post<{ address: string }>('/api/admin/dropbox/regenerate'),
    onSuccess: () => {
      setConfirming(false);
      setCopied(false);
      return qc.invalidateQueries({ queryKey: KEY });
    },
  });
  return (
    <section className="card" aria-labelledby="dropbox-address-h">
      <h2 id="dropbox-address-h">{t('dropbox.address')}</h2>
      <p className="muted">{t('dropbox.addressHelp')}</p>
      <div className="dropbox-address">
        <code data-testid="dropbox-address">{address}</code>
        <button
          type="button"
          className="btn"
          onClick={() => {
            void navigator.clipboard?.writeText(address);
            setCopied(true);
          }}
        >
          {copied ? t('dropbox.copied') : t('dropbox.copy')}
        </button>
        {!confirming && (
          <button type="button" className="btn" onClick={() => setConfirming(true)}>
            {t('dropbox.regenerate')}
          </button>
        )}
      </div>
      {confirming && (
        <div className="alert alert-error" role="alert">
          <span>{t('dropbox.regenerateWarning')}</span>{' '}
          <button
            type="button"
            className="btn btn-danger"
            disabled={regenerate.isPending}
            onClick={() => regenerate.mutate()}
          >
            {t('dropbox.regenerateConfirm')}
          </button>{' '}
          <button type="button" className="btn" onClick={() => setConfirming(false)}>
            {t('common.cancel')}
          </button>
        </div>
      )}
      <ErrorBanner error={regenerate.error} />
    </section>
  );
}

function Senders({ senders }: { senders: Sender[] }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const [email, setEmail] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: KEY });
  const add = useMutation({
    mutationFn: (e: string) => api.post<Sender>('/api/admin/dropbox/senders', { email: e }),
    onSuccess: (s) => {
      setEmail('');
      setNotice(
        s.verified
          ? t('dropbox.senderVerified', { email: s.email })
          : t('dropbox.senderSent', { email: s.email }),
      );
      return refresh();
    },
  });
  const resend = useMutation({
    mutationFn: (s: Sender) => api.post(`/api/admin/dropbox/senders/${seg(s.id)}/resend`),
    onSuccess: (_r, s) => {
      setNotice(t('dropbox.senderSent', { email: s.email }));
      return refresh();
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.del(`/api/admin/dropbox/senders/${seg(id)}`),
    onSuccess: refresh,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setNotice(null);
    add.mutate(email.trim());
  };
  const fieldError =
    add.error instanceof ApiError ? add.error.details.find((d) => d.path === 'email')?.message : undefined;
  return (
    <section className="card" aria-labelledby="dropbox-senders-h">
      <h2 id="dropbox-senders-h">{t('dropbox.senders')}</h2>
      <p className="muted">{t('dropbox.sendersHelp')}</p>
      {notice && <Notice>{notice}</Notice>}
      <ErrorBanner error={(fieldError ? null : add.error) ?? resend.error ?? remove.error} />
      {senders.length === 0 ? (
        <p className="muted">{t('dropbox.noSenders')}</p>
      ) : (
        <table className="data-table" data-testid="dropbox-senders">
          <thead>
            <tr>
              <th>{t('dropbox.senderEmail')}</th>
              <th>{t('dropbox.senderStatus')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {senders.map((s) => (
              <tr key={s.id}>
                <td>{s.email}</td>
                <td>
                  {s.verified
                    ? s.userName
                      ? t('dropbox.verifiedUser', { name: s.userName })
                      : t('dropbox.verified')
                    : s.verifySentAt
                      ? t('dropbox.pending', { date: fmt.dateTime(s.verifySentAt) })
                      : t('dropbox.notVerified')}
                </td>
                <td className="dropbox-actions">
                  {!s.verified && !s.userName && (
                    <button type="button" className="btn btn-small" onClick={() => resend.mutate(s)}>
                      {t('dropbox.resend')}
                    </button>
                  )}
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={t('dropbox.removeSender', { email: s.email })}
                    onClick={() => remove.mutate(s.id)}
                  >
                    {t('dropbox.remove')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form className="dropbox-add" onSubmit={submit}>
        <FormRow id="dropbox-sender" label={t('dropbox.addSenderLabel')} error={fieldError}>
          <input
            id="dropbox-sender"
            type="email"
            value={email}
            required
            maxLength={320}
            onChange={(e) => setEmail(e.target.value)}
          />
        </FormRow>
        <button type="submit" className="btn btn-primary" disabled={add.isPending || !email.trim()}>
          {t('dropbox.addSender')}
        </button>
      </form>
    </section>
  );
}

/** pass, fail or none, as admins read SPF and DKIM; the detail says what mailauth found. */
function AuthBadge({
  check,
  result,
  detail,
}: {
  check: 'spf' | 'dkim';
  result: string;
  detail: string | null;
}) {
  const { t } = useTranslation();
  const kind = result === 'pass' ? 'pass' : result === 'none' || result === 'neutral' ? 'none' : 'fail';
  return (
    <div className="dropbox-auth">
      <span className={`dropbox-badge dropbox-${kind}`} data-testid={`auth-${check}`}>
        {t(`dropbox.auth.${check}`)} {t(`dropbox.auth.${kind}`)}
      </span>
      {detail && <small className="muted">{detail}</small>}
    </div>
  );
}

function Unmatched() {
  const { t } = useTranslation();
  const fmt = useFmt();
  const qc = useQueryClient();
  const [state, setState] = useState<State>('unmatched');
  const q = useInfiniteQuery({
    queryKey: [...KEY, 'items', state],
    initialPageParam: '',
    queryFn: ({ pageParam }) =>
      api.get<{ items: Item[]; next: string | null }>(
        `/api/admin/dropbox/items?state=${state}${pageParam ? `&cursor=${encodeURIComponent(pageParam)}` : ''}`,
      ),
    getNextPageParam: (last) => last.next ?? undefined,
  });
  const [assigning, setAssigning] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const discard = useMutation({
    mutationFn: (id: string) => api.post(`/api/admin/dropbox/items/${seg(id)}/discard`),
    onSuccess: () => {
      setNotice(t('dropbox.discarded'));
      return qc.invalidateQueries({ queryKey: [...KEY, 'items'] });
    },
  });
  const items = q.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="card" aria-labelledby="dropbox-received-h">
      <h2 id="dropbox-received-h">{t('dropbox.received')}</h2>
      <p className="muted">{t('dropbox.receivedHelp')}</p>
      <FormRow id="dropbox-state" label={t('dropbox.show')}>
        <select
          id="dropbox-state"
          value={state}
          onChange={(e) => {
            setState(e.target.value as State);
            setAssigning(null);
            setNotice(null);
          }}
        >
          {STATES.map((s) => (
            <option key={s} value={s}>
              {t(`dropbox.state.${s}`)}
            </option>
          ))}
        </select>
      </FormRow>
      {notice && <Notice>{notice}</Notice>}
      <ErrorBanner error={q.error ?? discard.error} />
      {q.isLoading ? (
        <Loading />
      ) : items.length === 0 ? (
        <p className="muted">{state === 'unmatched' ? t('dropbox.noUnmatched') : t('dropbox.noItems')}</p>
      ) : (
        <ul className="dropbox-items">
          {items.map((i) => (
            <li key={i.id} className="dropbox-item" data-testid="dropbox-item">
              <div className="dropbox-item-head">
                <strong>{i.subject || t('dropbox.noSubject')}</strong>
                <span className="muted">{fmt.dateTime(i.date)}</span>
              </div>
              <div>
                {t('dropbox.from', {
                  from: i.fromName
                    ? `${i.fromName} <${i.fromAddress ?? ''}>`
                    : (i.fromAddress ?? i.envelopeFrom),
                })}
              </div>
              {(i.to.length > 0 || i.cc.length > 0) && (
                <div className="muted">
                  {t('dropbox.recipients', { list: [...i.to, ...i.cc].map((a) => a.address).join(', ') })}
                </div>
              )}
              {state === 'unmatched' && i.reason && (
                <div className="dropbox-reason">{t(`dropbox.reason.${i.reason}`)}</div>
              )}
              {i.records.length > 0 && (
                <div>{t('dropbox.attachedTo', { list: i.records.map((r) => r.displayName).join(', ') })}</div>
              )}
              <AuthBadge check="spf" result={i.spf} detail={i.spfDetail} />
              <AuthBadge
                check="dkim"
                result={i.dkim}
                detail={[i.dkimDomain, i.dkimDetail].filter(Boolean).join(': ') || null}
              />
              {i.snippet && <p className="dropbox-snippet">{i.snippet}</p>}
              {state !== 'unmatched' ? null : assigning === i.id ? (
                <AssignPicker
                  item={i}
                  onDone={(n) => {
                    setAssigning(null);
                    setNotice(t('dropbox.assigned', { count: n }));
                  }}
                  onCancel={() => setAssigning(null)}
                />
              ) : (
                <div className="dropbox-actions">
                  <button type="button" className="btn btn-primary" onClick={() => setAssigning(i.id)}>
                    {t('dropbox.assign')}
                  </button>
                  <button
                    type="button"
                    className="btn"
                    disabled={discard.isPending}
                    onClick={() => discard.mutate(i.id)}
                  >
                    {t('dropbox.discard')}
                  </button>
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
      {q.hasNextPage && (
        <button
          type="button"
          className="btn"
          disabled={q.isFetchingNextPage}
          onClick={() => void q.fetchNextPage()}
        >
          {t('dropbox.older')}
        </button>
      )}
    </section>
  );
}

const MODULES = ['leads', 'contacts'] as const;

function AssignPicker({ item, onDone, onCancel }: { item: Item; onDone(n: number): void; onCancel(): void }) {
  const { t } = useTranslation();
  const qc = useQueryClient();
  const [term, setTerm] = useState('');
  const [chosen, setChosen] = useState<Map<string, string>>(new Map());
  const search = useQuery({
    queryKey: [...KEY, 'search', term],
    enabled: term.trim().length > 0,
    queryFn: async () => {
      const lists = await Promise.all(
        MODULES.map((m) =>
          api
            .get<{ records: Found[] }>(
              `/api/modules/${m}/records/search?q=${encodeURIComponent(term.trim())}`,
            )
            .then((r) => r.records.map((x) => ({ ...x, module: m }))),
        ),
      );
      return lists.flat();
    },
  });
  const assign = useMutation({
    mutationFn: () =>
      api.post(`/api/admin/dropbox/items/${seg(item.id)}/assign`, { recordIds: [...chosen.keys()] }),
    onSuccess: () => {
      onDone(chosen.size);
      return qc.invalidateQueries({ queryKey: [...KEY, 'items'] });
    },
  });
  const toggle = (id: string, name: string) =>
    setChosen((prev) => {
      const next = new Map(prev);
      if (next.has(id)) next.delete(id);
      else next.set(id, name);
      return next;
    });
  return (
    <div className="dropbox-picker">
      <FormRow id={`assign-${item.id}`} label={t('dropbox.searchRecords')}>
        <input
          id={`assign-${item.id}`}
          type="search"
          value={term}
          maxLength={100}
          onChange={(e) => setTerm(e.target.value)}
        />
      </FormRow>
      <ErrorBanner error={search.error ?? assign.error} />
      {search.data && search.data.length === 0 && <p className="muted">{t('dropbox.noRecords')}</p>}
      <ul className="dropbox-found">
        {(search.data ?? []).map((r) => (
          <li key={r.id}>
            <label>
              <input
                type="checkbox"
                checked={chosen.has(r.id)}
                onChange={() => toggle(r.id, r.displayName)}
              />{' '}
              {r.displayName} <span className="muted">{t(`dropbox.module.${r.module}`)}</span>
            </label>
          </li>
        ))}
      </ul>
      {chosen.size > 0 && (
        <p className="muted">{t('dropbox.chosen', { list: [...chosen.values()].join(', ') })}</p>
      )}
      <div className="dropbox-actions">
        <button
          type="button"
          className="btn btn-primary"
          disabled={chosen.size === 0 || assign.isPending}
          onClick={() => assign.mutate()}
        >
          {t('dropbox.assignTo', { count: chosen.size })}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          {t('common.cancel')}
        </button>
      </div>
    </div>
  );
}
