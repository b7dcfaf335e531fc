import { useId } from 'react';
import { useTranslation } from 'react-i18next';
import {
  BAR_STEPS,
  type Counted,
  type EmailStatus,
  type LatestState,
  progressRank,
  stepReached,
} from '../../../../src/tracking/status.ts';
import { useFmt } from '../../session.tsx';
import './email-status.css';

// The status bar of one email on the record's Emails list (F4.5): sent → delivered → opened →
// clicked → replied, a bounce in red in place of "delivered", and on hover (or keyboard focus) the
// details: counts by people and by machines side by side, first and last times, the bounce reason.
// The steps and what reaches them come from src/tracking/status.ts, the rule the API uses too.

export type { EmailStatus };

function Counts({ kind, c }: { kind: 'opens' | 'clicks'; c: Counted }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  return (
    <tr>
      <th scope="row">{t(`insights.${kind}`)}</th>
      <td data-testid={`detail-${kind}`}>
        <span className="count-human">{t('insights.people', { count: c.human })}</span>
        {' · '}
        <span className="count-machine">{t('insights.machines', { count: c.machine })}</span>
        {c.first && (
          <div className="muted">
            {t('insights.firstLast', { first: fmt.dateTime(c.first), last: fmt.dateTime(c.last ?? c.first) })}
          </div>
        )}
      </td>
    </tr>
  );
}

export function EmailStatusBar({ status }: { status: EmailStatus }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  const detailId = useId();
  const bounced = status.state === 'bounced';
  return (
    <div className="status-bar" data-testid="status-bar" data-state={status.state}>
      {/* A button, so that keyboard users reach the details too (focus shows them, as hover does). */}
      <button
        type="button"
        className="status-steps"
        aria-label={t(`insights.state.${status.state}`)}
        aria-describedby={detailId}
      >
        <span className={`badge status-${status.state}`} data-testid="email-status">
          {t(`insights.state.${status.state}`)}
        </span>
        {BAR_STEPS.map((step) => {
          const isBounce = step === 'delivered' && bounced;
          const on = isBounce || stepReached(status, step);
          return (
            <span
              key={step}
              className={`status-step${on ? ' on' : ''}${isBounce ? ' bounced' : ''}`}
              data-step={isBounce ? 'bounced' : step}
            >
              {t(`insights.step.${isBounce ? 'bounced' : step}`)}
            </span>
          );
        })}
      </button>
      <div className="status-detail" role="tooltip" id={detailId} data-testid="status-detail">
        <table>
          <tbody>
            <tr>
              <th scope="row">{t('insights.step.sent')}</th>
              <td>{status.sentAt ? fmt.dateTime(status.sentAt) : '—'}</td>
            </tr>
            {status.bounce && (
              <tr className="bounce-row">
                <th scope="row">{t('insights.step.bounced')}</th>
                <td>
                  {status.bounce.kind ? t(`insights.bounceKind.${status.bounce.kind}`) : ''}{' '}
                  {fmt.dateTime(status.bounce.at)}
                  {status.bounce.reason && <div className="bounce-reason">{status.bounce.reason}</div>}
                </td>
              </tr>
            )}
            {status.tracked ? (
              <>
                <Counts kind="opens" c={status.opens} />
                <Counts kind="clicks" c={status.clicks} />
              </>
            ) : (
              <tr>
                <td colSpan={2} className="muted">
                  {t('insights.notTracked')}
                </td>
              </tr>
            )}
            {status.repliedAt && (
              <tr>
                <th scope="row">{t('insights.step.replied')}</th>
                <td>{fmt.dateTime(status.repliedAt)}</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}

/** The record's latest email status, beside the Emails heading. */
export function LatestStatus({ latest }: { latest: { state: LatestState; at: string } | null }) {
  const { t } = useTranslation();
  const fmt = useFmt();
  if (!latest) return null;
  const tone =
    latest.state === 'bounced'
      ? 'bad'
      : progressRank(latest.state) >= 3 || latest.state === 'received'
        ? 'good'
        : '';
  return (
    <span className={`latest-status ${tone}`} data-testid="latest-status" data-state={latest.state}>
      {t('insights.latest', { state: t(`insights.state.${latest.state}`), at: fmt.dateTime(latest.at) })}
    </span>
  );
}
