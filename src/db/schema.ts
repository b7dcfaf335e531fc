import type { ColumnType, Generated, JSONColumnType } from 'kysely';

// Table types for Kysely. Column names mirror the SQL in migrations/ exactly.
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T extends object | null> = JSONColumnType<T, T | string, T | string>;
// Columns with a database default: optional on insert.
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export type Edition = 'free' | 'standard' | 'professional' | 'enterprise' | 'ultimate';
export type UserStatus = 'invited' | 'confirmed' | 'active' | 'deactivated';
export type FieldType =
  | 'text'
  | 'long_text'
  | 'email'
  | 'phone'
  | 'number'
  | 'currency'
  | 'date'
  | 'datetime'
  | 'picklist'
  | 'multi_picklist'
  | 'boolean'
  | 'lookup'
  | 'user';

export interface ModulePermission {
  read: boolean;
  create: boolean;
  edit: boolean;
  delete: boolean;
  mass_email: boolean;
}

export interface Permissions {
  manage_templates?: boolean;
  modules?: Record<string, Partial<ModulePermission>>;
}

export interface FieldOptions {
  values?: string[]; // picklist, multi_picklist
  module?: string; // lookup: target module api_name
  max_length?: number;
  decimals?: number;
}

export interface OrgsTable {
  id: Generated<string>;
  name: string;
  edition: ColumnType<Edition, Edition | undefined, Edition>;
  time_zone: Generated<string>;
  currency: Generated<string>;
  mass_email_addon: Generated<number>;
  insights_enabled: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface ProfilesTable {
  id: Generated<string>;
  org_id: string;
  name: string;
  is_admin: Generated<boolean>;
  permissions: Json<Permissions>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface UsersTable {
  id: Generated<string>;
  org_id: string;
  profile_id: string;
  email: string;
  name: string;
  password_hash: string | null;
  status: ColumnType<UserStatus, UserStatus | undefined, UserStatus>;
  time_zone: Generated<string>;
  locale: Generated<string>;
  invite_token_hash: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface SessionsTable {
  id: string;
  org_id: string;
  user_id: string;
  csrf_token: string;
  created_at: DefaultTimestamp;
  expires_at: Timestamp;
}

export interface ApiKeysTable {
  id: Generated<string>;
  org_id: string;
  user_id: string;
  name: string;
  prefix: string;
  key_hash: string;
  created_at: DefaultTimestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface ModulesTable {
  id: Generated<string>;
  org_id: string;
  api_name: string;
  singular_label: string;
  plural_label: string;
  is_custom: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface FieldsTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  api_name: string;
  label: string;
  type: FieldType;
  required: Generated<boolean>;
  options: Json<FieldOptions>;
  is_custom: Generated<boolean>;
  position: Generated<number>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface RecordsTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  owner_id: string;
  created_by: string | null;
  data: Json<Record<string, unknown>>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface ViewsTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  owner_id: string | null;
  name: string;
  system_key: string | null;
  shared: Generated<boolean>;
  criteria: Json<object> | null;
  columns: Json<string[]>;
  sort: Json<{ field: string; dir: 'asc' | 'desc' }> | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface EditionLimitsTable {
  edition: Edition;
  individual_per_user: number;
  individual_user_cap: number | null;
  individual_flat_over_cap: number | null;
  mass_daily: Generated<number>;
  mass_addon_max: Generated<number>;
  followups_per_mass: Generated<number>;
  updated_at: DefaultTimestamp;
}

export interface DailyUsageTable {
  org_id: string;
  day: ColumnType<string, string, string>; // YYYY-MM-DD (GMT)
  kind: string;
  used: Generated<number>;
}

export interface TemplateFoldersTable {
  id: Generated<string>;
  org_id: string;
  name: string;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface TemplatesTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  folder_id: string | null;
  name: string;
  current_version: Generated<number>;
  created_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
  deleted_at: Timestamp | null;
}

export interface TemplateVersionsTable {
  id: Generated<string>;
  org_id: string;
  template_id: string;
  version: number;
  subject: string;
  html_source: string;
  html: string;
  text: string;
  text_generated: Generated<boolean>;
  from_address: string | null;
  from_name: string | null;
  reply_to: string | null;
  comment: string | null;
  author_id: string | null;
  created_at: DefaultTimestamp;
}

export interface OrgAddressesTable {
  id: Generated<string>;
  org_id: string;
  email: string;
  display_name: string | null;
  verify_token_hash: string | null;
  verify_sent_at: Timestamp | null;
  verified_at: Timestamp | null;
  created_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export type RelaySecurity = 'none' | 'starttls' | 'tls';
export interface DomainLimit {
  connections?: number;
  perSecond?: number;
}

export interface SmtpRelaysTable {
  org_id: string;
  host: string;
  port: number;
  security: RelaySecurity;
  username: string | null;
  password_enc: string | null;
  max_connections: Generated<number>;
  max_per_second: ColumnType<string, string | number | undefined, string | number>; // numeric
  domain_limits: Json<Record<string, DomainLimit>>;
  sending_domain: string | null;
  updated_at: DefaultTimestamp;
}

export interface DkimKeysTable {
  id: Generated<string>;
  org_id: string;
  domain: string;
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  private_key_enc: string;
  public_key: string;
  created_at: DefaultTimestamp;
}

export type MessageKind = 'individual' | 'mass' | 'test' | 'system' | 'autoresponder' | 'workflow';
export type MessageStatus = 'queued' | 'sending' | 'sent' | 'deferred' | 'failed' | 'unknown';

export interface MessagesTable {
  id: Generated<string>;
  org_id: string;
  kind: MessageKind;
  module_id: string | null;
  record_id: string | null;
  template_id: string | null;
  template_version: number | null;
  sender_id: string | null;
  from_address: string;
  from_name: string | null;
  reply_to: string | null;
  to_address: string;
  to_name: string | null;
  subject: string;
  html: string | null;
  text: string | null;
  message_id_header: string;
  transport: 'relay' | 'outbox';
  status: Generated<MessageStatus>;
  attempts: Generated<number>;
  next_attempt_at: DefaultTimestamp;
  expires_at: Timestamp;
  claimed_at: Timestamp | null;
  claim_id: string | null;
  smtp_code: number | null;
  smtp_response: string | null;
  sent_at: Timestamp | null;
  mass_email_id: Generated<string | null>;
  tracked: Generated<boolean>;
  bounced_at: Timestamp | null;
  bounce_kind: 'hard' | 'soft' | 'policy' | null;
  bounce_reason: string | null;
  opened_at: Timestamp | null;
  last_opened_at: Timestamp | null;
  open_count: Generated<number>;
  machine_open_count: Generated<number>;
  clicked_at: Timestamp | null;
  last_clicked_at: Timestamp | null;
  click_count: Generated<number>;
  machine_click_count: Generated<number>;
  replied_at: Timestamp | null;
  autoresponder_id: string | null;
  workflow_rule_id: string | null;
  complained_at: Timestamp | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface OutboxTable {
  message_id: string;
  org_id: string;
  raw: Buffer;
  created_at: DefaultTimestamp;
}

export type SuppressionReason = 'hard_bounce' | 'soft_bounce' | 'complaint' | 'unsubscribe' | 'manual';
export interface SuppressionsTable {
  org_id: string;
  email: string;
  reason: SuppressionReason;
  message_id: string | null;
  created_at: DefaultTimestamp;
  detail: string | null;
  created_by: string | null;
}

export type MassStatus = 'scheduled' | 'sending' | 'sent' | 'stopped';
export type FollowupAudience = 'received' | 'opened' | 'not_opened' | 'clicked' | 'not_clicked';
export type AudienceSpec =
  | { kind: 'ids'; ids: string[] }
  | { kind: 'view'; viewId: string }
  | { kind: 'criteria'; criteria: unknown };
export interface AddressChoice {
  kind: 'user' | 'org_address' | 'owner' | 'template';
  orgAddressId?: string;
}

export interface MassEmailsTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  parent_id: string | null;
  position: Generated<number>;
  created_by: string;
  name: string;
  template_id: string;
  from_choice: Json<AddressChoice>;
  reply_to_choice: Json<AddressChoice> | null;
  audience: Json<AudienceSpec> | null;
  followup_audience: FollowupAudience | null;
  followup_days: number | null;
  ignore_criteria: Json<object> | null;
  status: MassStatus;
  stop_reason: string | null;
  send_at: Timestamp | null;
  schedule_version: Generated<number>;
  allow_wait: Generated<boolean>;
  recipients: Generated<number>;
  excluded: Generated<number>;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export type ExclusionReason = 'no_address' | 'invalid_address' | 'opted_out' | 'suppressed' | 'duplicate';
export interface MassEmailExclusionsTable {
  mass_email_id: string;
  org_id: string;
  record_id: string;
  email: string | null;
  reason: ExclusionReason;
}

export interface AutorespondersTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  name: string;
  template_id: string;
  criteria: Json<object> | null;
  anchor_field: Generated<string>;
  days: number;
  from_choice: Json<AddressChoice>;
  active: Generated<boolean>;
  active_since: DefaultTimestamp;
  created_by: string;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface WorkflowRulesTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  name: string;
  on_create: Generated<boolean>;
  on_edit: Generated<boolean>;
  criteria: Json<object> | null;
  template_id: string;
  to_record: Generated<boolean>;
  to_user_ids: ColumnType<string[], string[] | undefined, string[]>;
  from_choice: Json<AddressChoice>;
  active: Generated<boolean>;
  checked_until: DefaultTimestamp;
  created_by: string;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export type EmailEventKind =
  | 'opened'
  | 'clicked'
  | 'bounced'
  | 'complained'
  | 'unsubscribed'
  | 'replied'
  | 'received';
export interface EmailEventsTable {
  id: Generated<string>;
  org_id: string;
  message_id: string | null;
  record_id: string | null;
  mass_email_id: string | null;
  kind: EmailEventKind;
  human: Generated<boolean>;
  at: Date;
  data: Generated<Json<Record<string, unknown>>>;
  created_at: DefaultTimestamp;
}

export interface TrackingHitsTable {
  id: Generated<string>;
  org_id: string;
  message_id: string;
  at: Date;
  kind: 'open' | 'click';
  link: number | null;
  ip: string;
  user_agent: Generated<string>;
  method: string;
  headers: Generated<Json<Record<string, string>>>;
  /** null: a click waiting for its burst window to close */
  verdict: 'human' | 'machine' | null;
  reason: string | null;
}

export interface TrackingBatchesTable {
  id: string;
  written_at: DefaultTimestamp;
}

export type WebhookEvent =
  | 'sent'
  | 'delivered'
  | 'bounced'
  | 'opened'
  | 'clicked'
  | 'replied'
  | 'unsubscribed';
export interface WebhookEndpointsTable {
  id: string;
  org_id: string;
  url: string;
  description: Generated<string>;
  events: ColumnType<WebhookEvent[], WebhookEvent[], WebhookEvent[]>;
  secret_enc: string;
  enabled: Generated<boolean>;
  created_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export type WebhookDeliveryStatus = 'pending' | 'delivering' | 'delivered' | 'failed';
export interface WebhookDeliveriesTable {
  id: Generated<string>;
  org_id: string;
  endpoint_id: string;
  event_key: string;
  event: string;
  payload: Json<Record<string, unknown>>;
  status: Generated<WebhookDeliveryStatus>;
  attempts: Generated<number>;
  next_attempt_at: DefaultTimestamp;
  claimed_at: Timestamp | null;
  claim_id: string | null;
  last_status_code: number | null;
  last_error: string | null;
  last_duration_ms: number | null;
  delivered_at: Timestamp | null;
  created_at: DefaultTimestamp;
}

export interface WebhookAttemptsTable {
  delivery_id: string;
  attempt: number;
  at: Timestamp;
  status_code: number | null;
  duration_ms: number;
  error: string | null;
}

export interface FeedCursorsTable {
  name: string;
  txid: Generated<string>;
  event_id: Generated<number>;
  at: Timestamp | null;
  message_id: string | null;
  updated_at: DefaultTimestamp;
}

export type TriggerEvent = 'opened' | 'clicked' | 'bounced';
export interface MassEmailTriggersTable {
  mass_email_id: string;
  org_id: string;
  event: TriggerEvent;
  actions: Json<Record<string, unknown>>;
  updated_by: string | null;
  updated_at: DefaultTimestamp;
}

export interface TriggerFiringsTable {
  mass_email_id: string;
  record_id: string;
  event: TriggerEvent;
  org_id: string;
  email_event_id: number | null;
  fired_at: DefaultTimestamp;
}

export interface RecordHistoryTable {
  id: Generated<number>;
  org_id: string;
  record_id: string;
  at: DefaultTimestamp;
  source: string;
  mass_email_id: string | null;
  summary: string;
  detail: ColumnType<Record<string, unknown>, string | undefined, string>;
}

export interface SuppressionHistoryTable {
  id: Generated<string>;
  org_id: string;
  email: string;
  action: 'added' | 'removed';
  reason: string;
  detail: string | null;
  user_id: string | null;
  at: DefaultTimestamp;
}

export interface AdminAlertsTable {
  id: Generated<string>;
  org_id: string;
  kind: 'bounce_policy';
  key: string;
  title: string;
  detail: string;
  count: Generated<number>;
  message_id: string | null;
  first_at: Timestamp;
  last_at: Timestamp;
  dismissed_at: Timestamp | null;
  dismissed_by: string | null;
}

export type BounceProvider = 'ses' | 'sendgrid' | 'postmark' | 'mailgun';
export interface BounceWebhooksTable {
  org_id: string;
  provider: BounceProvider;
  token_hash: string;
  secret_enc: string | null;
  config: ColumnType<Record<string, unknown>, string | undefined, string>;
  last_received_at: Timestamp | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface DeliveryHandoversTable {
  id: Generated<string>;
  claimed_at: Date;
  message_ids: string[];
}

export interface MailboxAccountsTable {
  id: Generated<string>;
  org_id: string;
  user_id: string;
  protocol: 'imap' | 'pop3';
  host: string;
  port: number;
  security: RelaySecurity;
  username: string;
  auth: Generated<'password' | 'oauth2'>;
  secret_enc: string;
  email_address: string;
  backfill_days: Generated<number>;
  shared: Generated<boolean>;
  state: Generated<'active' | 'paused'>;
  error_code: string | null;
  error_message: string | null;
  error_at: Timestamp | null;
  failures: Generated<number>;
  backfill_done: Generated<boolean>;
  last_sync_at: Timestamp | null;
  next_sync_at: DefaultTimestamp;
  lease_owner: string | null;
  lease_until: Timestamp | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface MailboxFoldersTable {
  account_id: string;
  path: string;
  role: 'inbox' | 'sent';
  // int8 comes back as a JS number (db/pool.ts); UIDs and mod-sequences fit in practice.
  uidvalidity: ColumnType<number | null, number | null | undefined, number | null>;
  uidnext: ColumnType<number | null, number | null | undefined, number | null>;
  highest_modseq: ColumnType<number | null, number | null | undefined, number | null>;
  last_uid: Generated<number>;
  synced_at: Timestamp | null;
}

export interface MailAddress {
  address: string;
  name?: string | null;
}
export interface MailMessagesTable {
  id: Generated<string>;
  org_id: string;
  message_key: string;
  message_id_header: string | null;
  in_reply_to: string | null;
  references: ColumnType<string[], string[] | undefined, string[]>;
  thread_id: string;
  subject: Generated<string>;
  from_address: string | null;
  from_name: string | null;
  to_addresses: Generated<Json<MailAddress[]>>;
  cc_addresses: Generated<Json<MailAddress[]>>;
  participants: ColumnType<string[], string[] | undefined, string[]>;
  date: Timestamp;
  text_body: string | null;
  html_body: string | null;
  snippet: Generated<string>;
  has_attachments: Generated<boolean>;
  size: number | null;
  source: 'imap' | 'pop3' | 'dropbox';
  created_at: DefaultTimestamp;
}

export interface MailAttachmentsTable {
  id: Generated<string>;
  org_id: string;
  mail_id: string;
  idx: number;
  filename: string | null;
  content_type: Generated<string>;
  size: number | null;
  content_id: string | null;
  part: string | null;
  content: Buffer | null;
}

export interface MailLocationsTable {
  id: Generated<string>;
  org_id: string;
  mail_id: string;
  account_id: string;
  user_id: string;
  folder: string;
  uid: ColumnType<number | null, number | null | undefined, number | null>;
  uidl: string | null;
  direction: 'in' | 'out';
  seen: Generated<boolean>;
  date: Timestamp;
}

export interface MailRecordLinksTable {
  mail_id: string;
  record_id: string;
  org_id: string;
  module_id: string;
  role: 'from' | 'to' | 'cc';
}

// SalesInbox (migration 0012).
export type LabelColour =
  | 'gray'
  | 'red'
  | 'orange'
  | 'yellow'
  | 'green'
  | 'teal'
  | 'blue'
  | 'purple'
  | 'pink';
export interface MailLabelsTable {
  id: Generated<string>;
  org_id: string;
  user_id: string;
  name: string;
  colour: LabelColour;
  created_at: DefaultTimestamp;
}

export interface MailLabelAssignmentsTable {
  label_id: string;
  mail_id: string;
  org_id: string;
  user_id: string;
  created_at: DefaultTimestamp;
}

export type WatchState = 'waiting' | 'replied' | 'reminded' | 'cancelled';
export interface ResponseWatchesTable {
  id: Generated<string>;
  org_id: string;
  user_id: string;
  mail_id: string | null;
  message_id: string | null;
  message_id_header: string;
  subject: Generated<string>;
  record_id: string | null;
  module_id: string | null;
  due_at: Timestamp;
  state: Generated<WatchState>;
  replied_at: Timestamp | null;
  reminded_at: Timestamp | null;
  task_id: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface NotificationsTable {
  id: Generated<string>;
  org_id: string;
  user_id: string;
  kind: string;
  title: string;
  body: Generated<string>;
  link: string | null;
  created_at: DefaultTimestamp;
  read_at: Timestamp | null;
}

export interface MailLeadRulesTable {
  id: Generated<string>;
  org_id: string;
  user_id: string | null;
  module: 'leads' | 'contacts';
  match: 'domain' | 'keyword' | 'folder';
  match_values: string[];
  active: Generated<boolean>;
  created_by: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface MailLeadRuleAddsTable {
  org_id: string;
  address: string;
  rule_id: string | null;
  record_id: string | null;
  created_at: DefaultTimestamp;
}

export interface DropboxAddressesTable {
  org_id: string;
  token_hash: string;
  token_enc: string;
  created_by: string | null;
  created_at: DefaultTimestamp;
}

export interface DropboxSendersTable {
  id: Generated<string>;
  org_id: string;
  email: string;
  user_id: string | null;
  verify_token_hash: string | null;
  verify_sent_at: Timestamp | null;
  verified_at: Timestamp | null;
  created_by: string | null;
  created_at: DefaultTimestamp;
}

export type DropboxItemState = 'attached' | 'unmatched' | 'discarded';
export type DropboxUnmatchedReason = 'unverified_sender' | 'no_record';
export interface DropboxItemsTable {
  id: Generated<string>;
  org_id: string;
  mail_id: string | null;
  envelope_from: Generated<string>;
  from_address: string | null;
  from_name: string | null;
  subject: Generated<string>;
  date: Timestamp;
  remote_ip: string | null;
  helo: string | null;
  spf: string;
  spf_detail: string | null;
  dkim: string;
  dkim_domain: string | null;
  dkim_detail: string | null;
  state: DropboxItemState;
  reason: DropboxUnmatchedReason | null;
  received_at: DefaultTimestamp;
  resolved_by: string | null;
  resolved_at: Timestamp | null;
}

export interface ReportRollupsTable {
  org_id: string;
  level: number;
  grain: 'q' | 'd' | 'm';
  bucket: Timestamp;
  user_id: string | null;
  module_id: string | null;
  template_id: string | null;
  template_version: number | null;
  sent: Generated<number>;
  bounced: Generated<number>;
  tracked: Generated<number>;
  bounced_tracked: Generated<number>;
  opened: Generated<number>;
  opened_machine: Generated<number>;
  clicked: Generated<number>;
  clicked_machine: Generated<number>;
  received: Generated<number>;
  replied: Generated<number>;
}

export interface SavedReportConfig {
  columns: string[];
  status: string | null;
  from: string | null;
  to: string | null;
}

export interface SavedReportsTable {
  id: Generated<string>;
  org_id: string;
  user_id: string;
  kind: 'sent_status';
  name: string;
  config: Json<SavedReportConfig>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface MessageAttachmentsTable {
  id: Generated<string>;
  message_id: string;
  filename: string;
  content_type: string;
  content: Buffer;
  created_at: DefaultTimestamp;
}

export interface LoginAttemptsTable {
  key: string;
  window_start: Timestamp;
  attempts: number;
}

export interface WorkerPresenceTable {
  id: string;
  started_at: DefaultTimestamp;
  seen_at: DefaultTimestamp;
}

export interface DB {
  orgs: OrgsTable;
  profiles: ProfilesTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  modules: ModulesTable;
  fields: FieldsTable;
  records: RecordsTable;
  views: ViewsTable;
  edition_limits: EditionLimitsTable;
  daily_usage: DailyUsageTable;
  template_folders: TemplateFoldersTable;
  templates: TemplatesTable;
  template_versions: TemplateVersionsTable;
  org_addresses: OrgAddressesTable;
  smtp_relays: SmtpRelaysTable;
  dkim_keys: DkimKeysTable;
  messages: MessagesTable;
  outbox: OutboxTable;
  suppressions: SuppressionsTable;
  mass_emails: MassEmailsTable;
  mass_email_exclusions: MassEmailExclusionsTable;
  autoresponders: AutorespondersTable;
  workflow_rules: WorkflowRulesTable;
  email_events: EmailEventsTable;
  delivery_handovers: DeliveryHandoversTable;
  feed_cursors: FeedCursorsTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  mass_email_triggers: MassEmailTriggersTable;
  trigger_firings: TriggerFiringsTable;
  record_history: RecordHistoryTable;
  tracking_hits: TrackingHitsTable;
  tracking_batches: TrackingBatchesTable;
  suppression_history: SuppressionHistoryTable;
  admin_alerts: AdminAlertsTable;
  bounce_webhooks: BounceWebhooksTable;
  mailbox_accounts: MailboxAccountsTable;
  mailbox_folders: MailboxFoldersTable;
  mail_messages: MailMessagesTable;
  mail_attachments: MailAttachmentsTable;
  mail_locations: MailLocationsTable;
  mail_record_links: MailRecordLinksTable;
  mail_labels: MailLabelsTable;
  mail_label_assignments: MailLabelAssignmentsTable;
  response_watches: ResponseWatchesTable;
  notifications: NotificationsTable;
  mail_lead_rules: MailLeadRulesTable;
  mail_lead_rule_adds: MailLeadRuleAddsTable;
  dropbox_addresses: DropboxAddressesTable;
  dropbox_senders: DropboxSendersTable;
  dropbox_items: DropboxItemsTable;
  report_rollups: ReportRollupsTable;
  saved_reports: SavedReportsTable;
  message_attachments: MessageAttachmentsTable;
  login_attempts: LoginAttemptsTable;
  worker_presence: WorkerPresenceTable;
}
