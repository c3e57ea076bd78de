// The customer portal and the v2 event list through the official OpenMeter JavaScript SDK:
// an admin client makes a portal token, the portal client (`@openmeter/sdk/portal`) reads the
// token's subject's usage with it.
import assert from 'node:assert/strict'
import { OpenMeter } from '@openmeter/sdk'
import { OpenMeter as Portal } from '@openmeter/sdk/portal'

const [baseUrl, apiKey, suffix] = process.argv.slice(2)
const om = new OpenMeter({ baseUrl, apiKey })
const step = async (name, fn) => {
  try { return await fn() } catch (e) {
    console.error(`step failed: ${name}`); console.error(e?.problem ?? e?.message ?? e); throw e
  }
}

const slug = `portal_js_${suffix}`
const type = `portal_js_${suffix}`
await step('meters.create', () => om.meters.create({
  slug, eventType: type, aggregation: 'SUM', valueProperty: '$.tokens',
}))
const at = new Date(Date.UTC(2024, 0, 15, 10))
await step('events.ingest', () => om.events.ingest([
  { type, subject: 'acme', time: at, data: { tokens: 70 } },
  { type, subject: 'acme', time: at, data: { tokens: 2 } },
  { type, subject: 'globex', time: at, data: { tokens: 500 } },
]))

const token = await step('portal.create', () => om.portal.create({ subject: 'acme', allowedMeterSlugs: [slug] }))
assert.ok(token.token && token.id)
assert.ok(token.expiresAt instanceof Date)
const tokens = await step('portal.list', () => om.portal.list({ limit: 5 }))
assert.ok(tokens.some((t) => t.id === token.id && t.token === undefined))

const portal = new Portal({ baseUrl, portalToken: token.token })
const usage = await step('portal.query', () => portal.query(slug, { from: new Date(Date.UTC(2024, 0, 1)), windowSize: 'DAY' }))
assert.deepEqual(usage.data.map((row) => [row.subject, row.value]), [['acme', 72]])
assert.ok(usage.data[0].windowStart instanceof Date)

const page = await step('events.listV2', () => om.events.listV2({
  limit: 2, filter: JSON.stringify({ type: { $eq: type } }),
}))
assert.equal(page.items.length, 2)
assert.ok(page.nextCursor)
const rest = await step('events.listV2 cursor', () => om.events.listV2({
  limit: 2, cursor: page.nextCursor, filter: JSON.stringify({ type: { $eq: type } }),
}))
assert.equal(rest.items.length, 1)
assert.equal(rest.nextCursor, undefined)

await step('portal.invalidate', () => om.portal.invalidate({ id: token.id }))
await assert.rejects(() => portal.query(slug))
console.log('ok')
