import { Counter } from 'prom-client';

// Counters of bounce intake, registered on /metrics by src/http/metrics.ts. Forged VERP addresses
// and refused webhooks are counted so that an operator sees probing or a broken provider setup.

export const inboundBounces = new Counter({
  name: 'parley_bounce_inbound_total',
  help: 'Mail at the bounce listener by outcome (recorded, duplicate, not_bounce, unmatched, forged, not_ours, too_large, error)',
  labelNames: ['outcome'],
  registers: [],
});

export const webhookBounces = new Counter({
  name: 'parley_bounce_webhook_total',
  help: 'Provider bounce webhooks by provider and outcome (recorded, ignored, refused, error)',
  labelNames: ['provider', 'outcome'],
  registers: [],
});

export const bounceMetrics = [inboundBounces, webhookBounces];
