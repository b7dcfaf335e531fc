import { Counter } from 'prom-client';

// Mail at the BCC dropbox, registered on /metrics by src/http/metrics.ts. Refused recipients are
// counted so that an operator sees someone probing for dropbox addresses.
export const dropboxInbound = new Counter({
  name: 'parley_dropbox_inbound_total',
  help: 'Mail at the BCC dropbox by outcome (attached, unmatched, refused, error)',
  labelNames: ['outcome'],
  registers: [],
});
