import type { FieldOptions, FieldType } from '../db/schema.ts';

// The built-in modules and their usual fields, created for every new org.
export interface FieldDef {
  apiName: string;
  label: string;
  type: FieldType;
  required?: boolean;
  options?: FieldOptions;
}

export interface ModuleDef {
  apiName: string;
  singular: string;
  plural: string;
  fields: FieldDef[];
}

const pick = (apiName: string, label: string, values: string[]): FieldDef => ({
  apiName,
  label,
  type: 'picklist',
  options: { values },
});

const LEAD_SOURCES = [
  'Advertisement',
  'Cold Call',
  'Employee Referral',
  'External Referral',
  'Online Store',
  'Partner',
  'Public Relations',
  'Seminar Partner',
  'Trade Show',
  'Web Download',
  'Web Research',
  'Chat',
];
const INDUSTRIES = [
  'Agriculture',
  'Banking',
  'Construction',
  'Consulting',
  'Education',
  'Energy',
  'Finance',
  'Government',
  'Healthcare',
  'Hospitality',
  'Insurance',
  'Manufacturing',
  'Media',
  'Retail',
  'Technology',
  'Telecom',
  'Transportation',
];

export const LEAD_STATUSES = [
  'Not Contacted',
  'Attempted to Contact',
  'Contact in Future',
  'Contacted',
  'Junk Lead',
  'Lost Lead',
  'Not Qualified',
  'Pre-Qualified',
  'Purchased',
];

export const DEAL_STAGES = [
  'Qualification',
  'Needs Analysis',
  'Value Proposition',
  'Identify Decision Makers',
  'Proposal/Price Quote',
  'Negotiation/Review',
  'Closed Won',
  'Closed Lost',
];

export const builtinModules: ModuleDef[] = [
  {
    apiName: 'leads',
    singular: 'Lead',
    plural: 'Leads',
    fields: [
      { apiName: 'first_name', label: 'First Name', type: 'text' },
      { apiName: 'last_name', label: 'Last Name', type: 'text', required: true },
      { apiName: 'company', label: 'Company', type: 'text' },
      { apiName: 'title', label: 'Title', type: 'text' },
      { apiName: 'email', label: 'Email', type: 'email' },
      { apiName: 'phone', label: 'Phone', type: 'phone' },
      { apiName: 'mobile', label: 'Mobile', type: 'phone' },
      pick('lead_status', 'Lead Status', LEAD_STATUSES),
      pick('lead_source', 'Lead Source', LEAD_SOURCES),
      pick('industry', 'Industry', INDUSTRIES),
      pick('rating', 'Rating', ['Acquired', 'Active', 'Market Failed', 'Project Cancelled', 'Shut Down']),
      { apiName: 'annual_revenue', label: 'Annual Revenue', type: 'currency' },
      { apiName: 'no_of_employees', label: 'No. of Employees', type: 'number' },
      { apiName: 'website', label: 'Website', type: 'text' },
      { apiName: 'city', label: 'City', type: 'text' },
      { apiName: 'country', label: 'Country', type: 'text' },
      { apiName: 'email_opt_out', label: 'Email Opt Out', type: 'boolean' },
      { apiName: 'description', label: 'Description', type: 'long_text' },
    ],
  },
  {
    apiName: 'accounts',
    singular: 'Account',
    plural: 'Accounts',
    fields: [
      { apiName: 'account_name', label: 'Account Name', type: 'text', required: true },
      { apiName: 'website', label: 'Website', type: 'text' },
      { apiName: 'phone', label: 'Phone', type: 'phone' },
      pick('industry', 'Industry', INDUSTRIES),
      pick('account_type', 'Account Type', [
        'Analyst',
        'Competitor',
        'Customer',
        'Distributor',
        'Integrator',
        'Investor',
        'Other',
        'Partner',
        'Press',
        'Prospect',
        'Reseller',
        'Supplier',
        'Vendor',
      ]),
      { apiName: 'annual_revenue', label: 'Annual Revenue', type: 'currency' },
      { apiName: 'employees', label: 'Employees', type: 'number' },
      { apiName: 'billing_city', label: 'Billing City', type: 'text' },
      { apiName: 'billing_country', label: 'Billing Country', type: 'text' },
      { apiName: 'description', label: 'Description', type: 'long_text' },
    ],
  },
  {
    apiName: 'contacts',
    singular: 'Contact',
    plural: 'Contacts',
    fields: [
      { apiName: 'first_name', label: 'First Name', type: 'text' },
      { apiName: 'last_name', label: 'Last Name', type: 'text', required: true },
      { apiName: 'account_id', label: 'Account Name', type: 'lookup', options: { module: 'accounts' } },
      { apiName: 'email', label: 'Email', type: 'email' },
      { apiName: 'phone', label: 'Phone', type: 'phone' },
      { apiName: 'mobile', label: 'Mobile', type: 'phone' },
      { apiName: 'title', label: 'Title', type: 'text' },
      { apiName: 'department', label: 'Department', type: 'text' },
      pick('lead_source', 'Lead Source', LEAD_SOURCES),
      { apiName: 'date_of_birth', label: 'Date of Birth', type: 'date' },
      { apiName: 'mailing_city', label: 'Mailing City', type: 'text' },
      { apiName: 'mailing_country', label: 'Mailing Country', type: 'text' },
      { apiName: 'email_opt_out', label: 'Email Opt Out', type: 'boolean' },
      { apiName: 'description', label: 'Description', type: 'long_text' },
    ],
  },
  {
    apiName: 'deals',
    singular: 'Deal',
    plural: 'Deals',
    fields: [
      { apiName: 'deal_name', label: 'Deal Name', type: 'text', required: true },
      { apiName: 'account_id', label: 'Account Name', type: 'lookup', options: { module: 'accounts' } },
      { apiName: 'contact_id', label: 'Contact Name', type: 'lookup', options: { module: 'contacts' } },
      { apiName: 'amount', label: 'Amount', type: 'currency' },
      pick('stage', 'Stage', DEAL_STAGES),
      { apiName: 'closing_date', label: 'Closing Date', type: 'date', required: true },
      { apiName: 'probability', label: 'Probability (%)', type: 'number' },
      pick('type', 'Type', ['New Business', 'Existing Business']),
      pick('lead_source', 'Lead Source', LEAD_SOURCES),
      { apiName: 'description', label: 'Description', type: 'long_text' },
    ],
  },
  {
    apiName: 'tasks',
    singular: 'Task',
    plural: 'Tasks',
    fields: [
      { apiName: 'subject', label: 'Subject', type: 'text', required: true },
      { apiName: 'due_date', label: 'Due Date', type: 'date' },
      pick('status', 'Status', ['Not Started', 'Deferred', 'In Progress', 'Completed', 'Waiting for Input']),
      pick('priority', 'Priority', ['Highest', 'High', 'Normal', 'Low', 'Lowest']),
      { apiName: 'lead_id', label: 'Lead', type: 'lookup', options: { module: 'leads' } },
      { apiName: 'contact_id', label: 'Contact', type: 'lookup', options: { module: 'contacts' } },
      { apiName: 'deal_id', label: 'Deal', type: 'lookup', options: { module: 'deals' } },
      { apiName: 'description', label: 'Description', type: 'long_text' },
    ],
  },
  {
    apiName: 'calls',
    singular: 'Call',
    plural: 'Calls',
    fields: [
      { apiName: 'subject', label: 'Subject', type: 'text', required: true },
      pick('call_type', 'Call Type', ['Outbound', 'Inbound', 'Missed']),
      { apiName: 'call_start_time', label: 'Call Start Time', type: 'datetime' },
      { apiName: 'call_duration_seconds', label: 'Call Duration (seconds)', type: 'number' },
      pick('call_result', 'Call Result', [
        'Interested',
        'Not Interested',
        'No Response',
        'Busy',
        'Requested More Info',
        'Requested Call Back',
        'Invalid Number',
      ]),
      pick('call_purpose', 'Call Purpose', [
        'Prospecting',
        'Administrative',
        'Negotiation',
        'Demo',
        'Project',
        'Desk',
      ]),
      { apiName: 'lead_id', label: 'Lead', type: 'lookup', options: { module: 'leads' } },
      { apiName: 'contact_id', label: 'Contact', type: 'lookup', options: { module: 'contacts' } },
      { apiName: 'deal_id', label: 'Deal', type: 'lookup', options: { module: 'deals' } },
      { apiName: 'description', label: 'Description', type: 'long_text' },
    ],
  },
];

/** Fields every record has, kept in real columns rather than in `data`. */
export const systemFields: FieldDef[] = [
  { apiName: 'owner', label: 'Owner', type: 'user' },
  { apiName: 'created_by', label: 'Created By', type: 'user' },
  { apiName: 'created_at', label: 'Created Time', type: 'datetime' },
  { apiName: 'updated_at', label: 'Modified Time', type: 'datetime' },
];

/** Which data fields make a record's display name, in order. Custom modules use `name`. */
export function nameFields(moduleApiName: string): string[] {
  switch (moduleApiName) {
    case 'leads':
    case 'contacts':
      return ['first_name', 'last_name'];
    case 'accounts':
      return ['account_name'];
    case 'deals':
      return ['deal_name'];
    case 'tasks':
    case 'calls':
      return ['subject'];
    default:
      return ['name'];
  }
}

export function displayName(moduleApiName: string, data: Record<string, unknown>): string {
  return nameFields(moduleApiName)
    .map((f) => data[f])
    .filter((v) => typeof v === 'string' && v.length > 0)
    .join(' ');
}
