-- Deleting a workflow rule sets its sent messages' workflow_rule_id to NULL (ON DELETE SET NULL):
-- without an index that is a scan of every message. Autoresponders have one (messages_autoresponder_once).
CREATE INDEX messages_workflow_rule_idx ON messages (workflow_rule_id) WHERE workflow_rule_id IS NOT NULL;
