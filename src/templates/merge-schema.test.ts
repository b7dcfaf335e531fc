// Save-time checking of merge fields: every variable a template reads must exist in the module's
// merge schema, and the sample/empty contexts hold exactly the schema's fields.
import { describe, expect, it } from 'vitest';
import { compileTemplate, renderCompiled } from './engine.ts';
import { sampleContext } from './merge-context.ts';
import { listMergeFields, mergeKey, mergeSchema, relatedKey, unknownMergeFields } from './merge-schema.ts';
import { catalogModules } from './test-modules.ts';

const modules = catalogModules([
  {
    apiName: 'org',
    singular: 'Org',
    fields: [
      { apiName: 'name', label: 'Org Name', type: 'text' },
      { apiName: 'partner', label: 'Partner', type: 'lookup', options: { module: 'accounts' } },
      { apiName: 'tags', label: 'Tags', type: 'multi_picklist', options: { values: ['A', 'B'] } },
    ],
  },
]);

function unknown(
  module: string,
  parts: { subject?: string; html?: string; text?: string },
  canRead?: (m: string) => boolean,
) {
  const schema = mergeSchema(modules, module, canRead);
  const compiled = compileTemplate({
    subject: parts.subject ?? 's',
    html: parts.html ?? null,
    text: parts.text ?? '',
  });
  return unknownMergeFields(schema, compiled);
}

describe('merge fields', () => {
  it('names records after their module', () => {
    expect(['leads', 'contacts', 'accounts', 'deals', 'tasks', 'calls'].map(mergeKey)).toEqual([
      'lead',
      'contact',
      'account',
      'deal',
      'task',
      'call',
    ]);
    expect(mergeKey('gadgets')).toBe('gadgets');
    expect(mergeKey('org')).toBe('record'); // would hide the org root
    expect(relatedKey('account_id', new Set(['account_id']))).toBe('account');
    expect(relatedKey('account_id', new Set(['account_id', 'account']))).toBe('account_id_record');
    expect(relatedKey('partner', new Set(['partner']))).toBe('partner');
  });

  it('accepts the fields of the record, its related records, owner, sender and org', () => {
    expect(
      unknown('leads', {
        subject: 'Hi {{ lead.first_name | default: "there" }} from {{ sender.name }}',
        html: '<p>{{ lead.company }} {{ lead.name }} {{ owner.email }} {{ org.name }} {{ lead.first_name.size }}</p>',
        text: '{{ sender.first_name }} {{ sender.last_name }} {{ owner.name }} {{ lead.annual_revenue | plus: 1 }}',
      }),
    ).toEqual([]);
    expect(
      unknown('contacts', {
        html: '{{ contact.account_id }} {{ contact.account.account_name }} {{ contact.account.website }} {{ contact.account.name }}',
      }),
    ).toEqual([]);
    expect(
      unknown('deals', {
        text: '{{ deal.account.industry }} {{ deal.contact.first_name }} {{ deal.contact.email }} {{ deal.stage }}',
      }),
    ).toEqual([]);
    expect(
      unknown('org', {
        text: '{{ record.name }} {{ record.partner.account_name }} {{ record.tags[0] }} {{ record.tags.first }}',
      }),
    ).toEqual([]);
  });

  it('does not check variables the template defines itself', () => {
    expect(
      unknown('leads', {
        text: '{% assign n = lead.first_name %}{{ n }}{% capture c %}{{ org.name }}{% endcapture %}{{ c }}{% for t in (1..2) %}{{ t }}{{ forloop.index }}{% endfor %}',
      }),
    ).toEqual([]);
  });

  it('reports every unknown field with its part, line, column and reason', () => {
    const found = unknown('leads', {
      subject: 'Hi {{ lead.frist_name }}',
      html: '<p>\n  {{ contact.first_name }}\n</p>\n{% if lead.secret %}x{% endif %}',
      text: '{{ owner.password_hash }} {{ org.secret }} {{ sender.api_key }}',
    });
    expect(found.map((u) => [u.part, u.path, u.line])).toEqual([
      ['subject', 'lead.frist_name', 1],
      ['html', 'contact.first_name', 2],
      ['html', 'lead.secret', 4],
      ['text', 'owner.password_hash', 1],
      ['text', 'org.secret', 1],
      ['text', 'sender.api_key', 1],
    ]);
    expect(found[0]).toMatchObject({ column: 7, reason: 'Lead has no field "frist_name"' });
    expect(found[1].reason).toMatch(/"contact" is not a merge field: use lead, owner, sender, org/);
  });

  it('refuses dynamic lookups, reads past a value and indexes of non-lists', () => {
    const found = unknown('leads', {
      text: '{% assign k = "email" %}{{ lead[k] }} {{ lead.first_name.x }} {{ lead.first_name[0] }} {{ lead.first_name.size.x }}',
    });
    expect(found.map((u) => u.reason)).toEqual([
      expect.stringMatching(/only fixed field names/),
      expect.stringMatching(/lead\.first_name is a value, not a record/),
      expect.stringMatching(/lead\.first_name is a value/),
      expect.stringMatching(/lead\.first_name is a value/),
    ]);
  });

  it("offers no related records of modules the author cannot read, nor a related record's lookups", () => {
    expect(
      unknown('contacts', { text: '{{ contact.account.website }}' }, (m) => m !== 'accounts'),
    ).toMatchObject([{ path: 'contact.account.website' }]);
    expect(unknown('tasks', { text: '{{ task.deal.deal_name }} {{ task.deal.account_id }}' })).toMatchObject([
      { path: 'task.deal.account_id' },
    ]);
  });

  it('lists the merge fields for the editor, and fills sample and empty contexts with exactly them', async () => {
    const schema = mergeSchema(modules, 'contacts');
    const fields = listMergeFields(schema);
    expect(fields).toContainEqual({ path: 'contact.first_name', label: 'First Name', group: 'Contact' });
    expect(fields).toContainEqual({
      path: 'contact.account.website',
      label: 'Website',
      group: 'Contact › Account',
    });
    expect(fields).toContainEqual({ path: 'sender.email', label: 'Email', group: 'Sender' });
    // Every listed field resolves in both contexts (strictVariables would throw otherwise).
    const all = compileTemplate({ subject: 's', text: fields.map((f) => `{{ ${f.path} }}`).join('|') });
    expect(unknownMergeFields(schema, all)).toEqual([]);
    const sample = await renderCompiled(all, sampleContext(schema, 'sample'));
    expect(sample.text).toContain('[First Name]');
    expect(sample.text).toContain('name@example.com');
    const direct = fields.filter((f) => f.path.split('.').length === 2);
    const empty = compileTemplate({
      subject: 's',
      text: direct.map((f) => `{{ ${f.path} | default: "-" }}`).join(''),
    });
    expect((await renderCompiled(empty, sampleContext(schema, 'empty'))).text).toBe(
      '-'.repeat(direct.length),
    );
  });
});
