// Plans and subscriptions through the official OpenMeter JavaScript SDK: Free (1,000 tokens a
// month) and Pro (10,000,000 tokens, SSO, a models config); subscribe to Free, use 800, upgrade
// to Pro mid-period (9,999,200 left), top up, downgrade at the next billing cycle, cancel.
import assert from 'node:assert/strict'
import { OpenMeter } from '@openmeter/sdk'

const [baseUrl, apiKey] = process.argv.slice(2)
const om = new OpenMeter({ baseUrl, apiKey })
const step = async (name, fn) => {
  try { return await fn() } catch (e) {
    console.error(`step failed: ${name}`); console.error(e?.problem ?? e?.message ?? e); throw e
  }
}

await step('meters.create', () => om.meters.create({
  slug: 'tokens', eventType: 'prompt', aggregation: 'SUM', valueProperty: '$.tokens',
}))
await step('features.create', () => om.features.create({ key: 'ai_tokens', name: 'AI tokens', meterSlug: 'tokens' }))
await step('features.create sso', () => om.features.create({ key: 'sso', name: 'SSO' }))
await step('features.create models', () => om.features.create({ key: 'models', name: 'Models' }))
await step('customers.create', () => om.customers.create({ key: 'acme', name: 'ACME', usageAttribution: { subjectKeys: ['acme'] } }))

const tokens = (allowance) => ({
  type: 'usage_based', key: 'ai_tokens', name: 'AI tokens', featureKey: 'ai_tokens',
  billingCadence: 'P1M', price: null,
  entitlementTemplate: { type: 'metered', issueAfterReset: allowance },
})
const plan = (key, rateCards) => ({
  key, name: key, currency: 'USD', billingCadence: 'P1M',
  phases: [{ key: 'default', name: 'Default', duration: null, rateCards }],
})
const free = await step('plans.create free', () => om.plans.create(plan('free', [tokens(1000)])))
assert.equal(free.status, 'draft')
assert.ok(free.createdAt instanceof Date)
await step('plans.publish free', () => om.plans.publish(free.id))
const pro = await step('plans.create pro', () => om.plans.create(plan('pro', [
  tokens(10_000_000),
  { type: 'flat_fee', key: 'sso', name: 'SSO', featureKey: 'sso', billingCadence: null, price: null, entitlementTemplate: { type: 'boolean' } },
  { type: 'flat_fee', key: 'models', name: 'Models', featureKey: 'models', billingCadence: 'P1M',
    price: { type: 'flat', amount: '49', paymentTerm: 'in_advance' },
    entitlementTemplate: { type: 'static', config: '{"allowed": ["gpt-4o"]}' } },
])))
const published = await step('plans.publish pro', () => om.plans.publish(pro.id))
assert.equal(published.status, 'active')
assert.ok(published.effectiveFrom instanceof Date)
const plans = await step('plans.list', () => om.plans.list({ status: ['active'] }))
assert.deepEqual(plans.items.map((p) => p.key).sort(), ['free', 'pro'])
assert.equal((await step('plans.get by key', () => om.plans.get('pro'))).id, pro.id)

const subscription = await step('subscriptions.create', () => om.subscriptions.create({
  plan: { key: 'free' }, customerKey: 'acme', timing: 'immediate',
}))
assert.equal(subscription.status, 'active')
assert.ok(subscription.activeFrom instanceof Date)
const value = () => om.customers.entitlements.value('acme', 'ai_tokens')
assert.equal((await step('value on free', value)).balance, 1000)

await step('events.ingest', () => om.events.ingest({ type: 'prompt', subject: 'acme', data: { tokens: 800 } }))
assert.equal((await step('value after usage', value)).balance, 200)

const changed = await step('subscriptions.change', () => om.subscriptions.change(subscription.id, {
  timing: 'immediate', plan: { key: 'pro' },
}))
assert.ok(changed.current.activeTo instanceof Date)
const proSubscription = changed.next
assert.equal(proSubscription.plan.key, 'pro')
const items = proSubscription.phases[0].items
assert.deepEqual(items.map((i) => i.key).sort(), ['ai_tokens', 'models', 'sso'])
let current = await step('value on pro', value)
assert.deepEqual([current.hasAccess, current.balance, current.usage], [true, 9_999_200, 800])
const sso = await step('sso on pro', () => om.customers.entitlements.value('acme', 'sso'))
assert.equal(sso.hasAccess, true)

await step('top up', () => om.entitlementsV1.grants.create('acme', 'ai_tokens', { amount: 5000, effectiveAt: new Date(), expiration: { duration: 'MONTH', count: 1 } }))
assert.equal((await step('value after top-up', value)).balance, 10_004_200)

const expanded = await step('subscriptions.get', () => om.subscriptions.get(proSubscription.id))
const tokenItem = expanded.phases[0].items.find((i) => i.key === 'ai_tokens')
assert.equal(tokenItem.included.entitlement.type, 'metered')

const downgrade = await step('subscriptions.change next cycle', () => om.subscriptions.change(proSubscription.id, {
  timing: 'next_billing_cycle', plan: { key: 'free' },
}))
assert.equal(downgrade.next.status, 'scheduled')
assert.equal(downgrade.current.status, 'canceled')
assert.equal((await step('value before the cycle ends', value)).balance, 10_004_200)

const customer = await step('customers.get', () => om.customers.get('acme'))
assert.equal(customer.currentSubscriptionId, proSubscription.id)
const listed = await step('customers.listSubscriptions', () => om.customers.listSubscriptions('acme'))
assert.equal(listed.items.length, 3)

const canceled = await step('subscriptions.cancel', () => om.subscriptions.cancel(proSubscription.id, { timing: 'immediate' }))
assert.ok(canceled.activeTo instanceof Date)
current = await step('value after cancel', value)
assert.equal(current.hasAccess, false)
console.log('ok')
