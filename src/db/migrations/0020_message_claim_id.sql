-- Which claim took a message ('sending'): a claim whose answer was lost (the database crashed or the
-- connection broke after its commit) is put back by this id (src/sending/delivery.ts, claim), where
-- claimed_at alone could also name another worker's claim of the same millisecond.
ALTER TABLE messages ADD COLUMN claim_id uuid;
