// Webhook notifications through the official OpenMeter JavaScript SDK: channels, rules, events.
import assert from 'node:assert/strict'
import { OpenMeter } from '@openmeter/sdk'

const [baseUrl, apiKey, hookUrl, signingSecret] = process.argv.slice(2)
const om = new OpenMeter({ baseUrl, apiKey })
const step = async (name, fn) => {
  try { return await fn() } catch (e) {
    console.error(`step failed: ${name}`); console.error(e?.problem ?? e?.message ?? e); throw e
  }
}

await step('meters.create', () => om.meters.create({
  slug: 'tokens_n', eventType: 'prompt_n', aggregation: 'SUM', valueProperty: '$.tokens',
}))
await step('features.create', () => om.features.create({ key: 'tokens_n', name: 'Tokens', meterSlug: 'tokens_n' }))
await step('customers.create', () => om.customers.create({ key: 'acme_n', name: 'ACME', usageAttribution: { subjectKeys: ['acme_n'] } }))
await step('customers.entitlements.create', () => om.customers.entitlements.create('acme_n', {
  type: 'metered', featureKey: 'tokens_n', usagePeriod: { interval: 'MONTH', anchor: new Date(Date.UTC(2024, 0, 1)) }, issueAfterReset: 100,
}))

const channel = await step('channels.create', () => om.notifications.channels.create({ type: 'WEBHOOK', name: 'hooks', url: hookUrl, signingSecret }))
assert.equal(channel.signingSecret, signingSecret)
assert.ok(channel.createdAt instanceof Date || typeof channel.createdAt === 'string')
const rule = await step('rules.create', () => om.notifications.rules.create({
  type: 'entitlements.balance.threshold', name: 'half', channels: [channel.id], features: ['tokens_n'],
  thresholds: [{ value: 50, type: 'usage_percentage' }],
}))
assert.deepEqual(rule.channels.map((c) => c.id), [channel.id])
assert.deepEqual(rule.features.map((f) => f.key), ['tokens_n'])
const channels = await step('channels.list', () => om.notifications.channels.list())
assert.deepEqual(channels.items.map((c) => c.id), [channel.id])
const rules = await step('rules.list', () => om.notifications.rules.list({ feature: ['tokens_n'] }))
assert.deepEqual(rules.items.map((r) => r.id), [rule.id])
assert.equal((await step('rules.get', () => om.notifications.rules.get(rule.id))).name, 'half')

await step('events.ingest', () => om.events.ingest({ type: 'prompt_n', subject: 'acme_n', time: new Date(Date.now() - 60_000), data: { tokens: 70 } }))
let events
for (let i = 0; i < 100; i++) {
  events = await step('notifications.events.list', () => om.notifications.events.list({ rule: [rule.id] }))
  if (events.items.length && events.items[0].deliveryStatus[0].state === 'SUCCESS') break
  await new Promise((resolve) => setTimeout(resolve, 100))
}
assert.equal(events.items.length, 1)
const [event] = events.items
assert.equal(event.deliveryStatus[0].state, 'SUCCESS')
assert.equal(event.payload.type, 'entitlements.balance.threshold')
assert.equal(event.payload.data.threshold.value, 50)
assert.equal(event.payload.data.value.usage, 70)
assert.equal((await step('notifications.events.get', () => om.notifications.events.get(event.id))).id, event.id)
await step('notifications.events.resend', () => om.notifications.events.resend(event.id))
console.log(event.id)
