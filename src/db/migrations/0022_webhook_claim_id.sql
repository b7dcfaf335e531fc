-- Which claim took a webhook delivery ('delivering'): a claim whose answer was lost is put back by
-- this id, its attempt not counted (src/webhooks/dispatcher.ts), as messages.claim_id does for mail.
ALTER TABLE webhook_deliveries ADD COLUMN claim_id uuid;
