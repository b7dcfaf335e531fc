-- Raw open and click hits (issue 5, "Machine opens and scanner clicks"): every hit as it arrived,
-- with what the human/machine rules read, so the rules can be re-run over stored hits. Kept 100 days
-- (a scheduled job purges older ones); the per-message totals on messages stay.
CREATE TABLE tracking_hits (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- No foreign key to orgs: the message's foreign key already removes hits with their org's
  -- messages, and an org key would make deleting an org scan every hit.
  org_id uuid NOT NULL,
  message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  at timestamptz NOT NULL,
  kind text NOT NULL CHECK (kind IN ('open', 'click')),
  -- the link's index in the message's link list; the hidden trap link is index links.length
  link integer,
  ip text NOT NULL,
  user_agent text NOT NULL DEFAULT '',
  method text NOT NULL,
  -- only the headers the rules read (sec-purpose, purpose, x-moz, via, …)
  headers jsonb NOT NULL DEFAULT '{}',
  -- NULL: a click waiting for its burst window to close (every-link and trap bursts are judged
  -- together, so no event fires for a click a burst condemns a moment later).
  verdict text CHECK (verdict IN ('human', 'machine')),
  reason text
);
CREATE INDEX tracking_hits_message_idx ON tracking_hits (message_id, at);
-- Hits arrive in time order: a BRIN index finds the purge range at almost no cost per insert.
CREATE INDEX tracking_hits_at_brin ON tracking_hits USING brin (at);
CREATE INDEX tracking_hits_pending_idx ON tracking_hits (at) WHERE verdict IS NULL;
