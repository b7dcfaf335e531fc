-- Login throttle (issue 8): failed sign-ins counted per account and per client IP in a window, in
-- the database so that every `serve` process behind a load balancer shares one count.
CREATE TABLE login_attempts (
  -- 'account:<lower-cased email>' or 'ip:<address>'.
  key text PRIMARY KEY CHECK (length(key) <= 400),
  window_start timestamptz NOT NULL,
  attempts integer NOT NULL CHECK (attempts >= 0)
);
-- The hourly purge drops windows long over.
CREATE INDEX login_attempts_window_idx ON login_attempts (window_start);
