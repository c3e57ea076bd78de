// The announcement scenario through the official OpenMeter JavaScript SDK.
import assert from 'node:assert/strict'
import { OpenMeter } from '@openmeter/sdk'

const [baseUrl, apiKey, suffix] = process.argv.slice(2)
const om = new OpenMeter({ baseUrl, apiKey })
const customer = `acme_js_${suffix}`
const step = async (name, fn) => {
  try { return await fn() } catch (e) {
    console.error(`step failed: ${name}`); console.error(e?.problem ?? e?.message ?? e); throw e
  }
}

const meter = await step('meters.create', () => om.meters.create({
  slug: `tokens_js_${suffix}`, eventType: `prompt_js_${suffix}`, aggregation: 'SUM',
  valueProperty: '$.tokens', groupBy: { model: '$.model' },
}))
assert.equal(meter.aggregation, 'SUM')
assert.ok(meter.createdAt instanceof Date)
const got = await step('meters.get', () => om.meters.get(meter.slug))
assert.equal(got.id, meter.id)
const meters = await step('meters.list', () => om.meters.list())
assert.ok(meters.some((m) => m.slug === meter.slug))

const feature = await step('features.create', () => om.features.create({ key: `ai_tokens_js_${suffix}`, name: 'AI tokens', meterSlug: meter.slug }))
await step('customers.create', () => om.customers.create({ key: customer, name: 'ACME JS', usageAttribution: { subjectKeys: [customer] } }))
const anchor = new Date(Date.UTC(2024, 0, 1))
const created = await step('customers.entitlements.create', () => om.customers.entitlements.create(customer, {
  type: 'metered', featureKey: feature.key, usagePeriod: { interval: 'MONTH', anchor }, issueAfterReset: 10_000_000,
}))
assert.equal(created.type, 'metered')

let value = await step('customers.entitlements.value', () => om.customers.entitlements.value(customer, feature.key))
assert.equal(value.hasAccess, true)
assert.equal(value.balance, 10_000_000)

const base = new Date(Date.now() - 60_000)
await step('events.ingest batch', () => om.events.ingest([
  { type: meter.eventType, subject: customer, time: base, data: { tokens: 9_999_000, model: 'gpt-4o' } },
  { id: `dup-${suffix}`, source: 'js', type: meter.eventType, subject: customer, time: base, data: { tokens: 2_000, model: 'gpt-4o-mini' } },
]))
await step('events.ingest duplicate', () => om.events.ingest({ id: `dup-${suffix}`, source: 'js', type: meter.eventType, subject: customer, time: base, data: { tokens: 2_000, model: 'gpt-4o-mini' } }))
value = await step('value after usage', () => om.customers.entitlements.value(customer, feature.key))
assert.deepEqual([value.hasAccess, value.balance, value.usage, value.overage], [false, 0, 10_001_000, 1_000])

const grant = await step('entitlementsV1.grants.create', () => om.entitlementsV1.grants.create(customer, feature.key, {
  amount: 500_000, effectiveAt: new Date(), expiration: { duration: 'MONTH', count: 1 },
}))
assert.equal(grant.amount, 500_000)
value = await step('entitlementsV1.value', () => om.entitlementsV1.value(customer, feature.key))
assert.deepEqual([value.hasAccess, value.balance, value.overage], [true, 499_000, 0])

const rows = await step('meters.query', () => om.meters.query(meter.slug, { groupBy: ['model'] }))
const byModel = Object.fromEntries(rows.data.map((r) => [r.groupBy.model, r.value]))
assert.deepEqual(byModel, { 'gpt-4o': 9_999_000, 'gpt-4o-mini': 2_000 })
const windowed = await step('meters.query windowed', () => om.meters.query(meter.slug, {
  from: new Date(Date.now() - 86_400_000), to: new Date(Date.now() + 60_000), windowSize: 'DAY', windowTimeZone: 'UTC',
}))
assert.equal(windowed.data.reduce((s, r) => s + r.value, 0), 10_001_000)
const posted = await step('meters.queryPost', () => om.meters.queryPost(meter.slug, { filterGroupBy: { model: ['gpt-4o-mini'] } }))
assert.equal(posted.data[0].value, 2_000)

const grants = await step('entitlementsV1.grants.list', () => om.entitlementsV1.grants.list(customer, feature.key))
assert.equal(grants.length, 2)
const ent = await step('entitlementsV1.get', () => om.entitlementsV1.get(created.id))
assert.equal(ent.id, created.id)
const list = await step('entitlementsV1.list', () => om.entitlementsV1.list({ feature: [feature.key] }))
assert.equal(list.length, 1)
const history = await step('entitlementsV1.history', () => om.entitlementsV1.history(customer, created.id, { windowSize: 'DAY' }))
assert.ok(history.burndownHistory.length >= 1)
const access = await step('customers.getAccess', () => om.customers.getAccess(customer))
assert.equal(access.entitlements[feature.key].balance, 499_000)
const listed = await step('customers.entitlements.list', () => om.customers.entitlements.list(customer))
assert.equal(listed.items.length, 1)
await step('entitlementsV1.reset', () => om.entitlementsV1.reset(customer, created.id, { retainAnchor: true }))
value = await step('value after reset', () => om.customers.entitlements.value(customer, feature.key))
assert.deepEqual([value.usage, value.overage], [0, 0])
await step('grants void', () => om.entitlementsV1.grants.void(grant.id))
const grantsV2 = await step('entitlements.grants.list (v2)', () => om.entitlements.grants.list({ feature: [feature.key] }))
assert.ok(grantsV2.items.some((g) => g.id === grant.id && g.voidedAt))
const subjects = await step('subjects.list', () => om.subjects.list())
assert.ok(subjects.some((s) => s.key === customer))
const customers = await step('customers.list', () => om.customers.list({ key: customer }))
assert.equal(customers.items.length, 1)
const events = await step('events.list', () => om.events.list({ subject: customer }))
assert.equal(events.length, 2)
console.log('ok')
