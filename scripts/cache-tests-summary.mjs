// Counts passed/total by test kind (required, optimal, check) for our
// results and for every cache whose results the suite publishes, with the
// suite's own verdict function (test-engine/lib/results.mjs), and prints a
// markdown table, then the required tests we fail.
// Usage: node cache-tests-summary.mjs SUITE_DIR OURS.json [LABEL [NAME]]
// Prints "ours-required=N" last, for the calling script to check.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, oursFile, label = '', oursName = 'cache-runtime http_proxy'] = process.argv.slice(2)
if (!suiteDir || !oursFile) {
  console.error('usage: node cache-tests-summary.mjs SUITE_DIR OURS.json [LABEL [NAME]]')
  process.exit(2)
}
const load = file => import(pathToFileURL(path.join(suiteDir, file)).href)
const suites = (await load('tests/index.mjs')).default
const index = (await load('results/index.mjs')).default

// The tests a reverse proxy runs (test-engine/client/runner.mjs skips
// browser_only ones when not testing a browser cache).
const tests = suites.flatMap(s => s.tests).filter(t => t.browser_only !== true)
const kinds = ['required', 'optimal', 'check']
const totals = Object.fromEntries(kinds.map(k => [k, 0]))
for (const t of tests) totals[t.kind || 'required']++

// A result is `true` (passed), `false`, or [kind, message] (failed: an
// assertion, a setup failure, a harness error). The suite's report
// (determineTestResult in test-engine/lib/results.mjs, lib/display.mjs in
// 0.4.5) further greys out a test when a test it `depends_on` did not pass;
// the counts below are of `true` results (the numbers cache-tests.fyi's
// summary gives), and the last column is required with dependencies
// honoured. (Those modules also load browser code, hence this restatement.)
const byId = new Map(tests.map(t => [t.id, t]))
function passes (id, results, seen = new Set()) {
  if (results[id] !== true) return false
  if (seen.has(id)) return true
  seen.add(id)
  const deps = byId.get(id)?.depends_on || []
  return deps.every(d => passes(d, results, seen))
}

function count (results) {
  const passed = Object.fromEntries(kinds.map(k => [k, 0]))
  passed.deps = 0
  for (const t of tests) {
    const kind = t.kind || 'required'
    if (results[t.id] === true) passed[kind]++
    if (kind === 'required' && passes(t.id, results)) passed.deps++
  }
  return passed
}

const ours = JSON.parse(fs.readFileSync(oursFile, 'utf8'))
const rows = [{ name: oursName, type: 'this run', passed: count(ours) }]
for (const item of index) {
  const results = JSON.parse(fs.readFileSync(path.join(suiteDir, 'results', item.file), 'utf8'))
  rows.push({ name: `${item.name} ${item.version || ''}`.trim(), type: item.type, passed: count(results) })
}
const version = JSON.parse(fs.readFileSync(path.join(suiteDir, 'package.json'), 'utf8')).version
console.log(`cache-tests ${version}${label ? ` (${label})` : ''}: tests passed / total, by kind\n`)
console.log('| cache | type | ' + kinds.map(k => `${k} /${totals[k]}`).join(' | ') + ` | required, dependencies honoured /${totals.required} |`)
console.log('|---|---|' + kinds.map(() => '---:').join('|') + '|---:|')
for (const r of rows) {
  console.log(`| ${r.name} | ${r.type} | ` + kinds.map(k => r.passed[k]).join(' | ') + ` | ${r.passed.deps} |`)
}
const failing = tests.filter(t => (t.kind || 'required') === 'required' && ours[t.id] !== true)
console.log(`\nRequired tests not passed (${failing.length}):`)
for (const t of failing) {
  const r = ours[t.id]
  const why = Array.isArray(r) ? `${r[0]}: ${r[1]}` : r === undefined ? 'not run' : 'failed'
  console.log(`- ${t.id}: ${t.name} — ${why}`)
}
console.log(`\nours-required=${rows[0].passed.required}`)
console.log(`ours-optimal=${rows[0].passed.optimal}`)
