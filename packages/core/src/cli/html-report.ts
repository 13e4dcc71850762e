import { duration } from '../control/phase-gates.js'
import type { ReportData } from '../control/report-data.js'
import type { SignalPoint } from '../control/signal-history.js'

/**
 * One self-contained page (no script, no external file: it can be mailed or archived with the
 * change ticket) from `readReportData`: the phase timeline with its actors, charts of compared-read
 * consistency, read share and mirror lag over time, backfill, quarantine and dead letters by reason,
 * verifications, the audit chain and the next move's gates. Every text from the database is escaped.
 */
export function renderHtmlReport(data: ReportData): string {
  const title = `Cutover report: ${data.migration}`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body><main>
<header><h1>${esc(title)}</h1><p>phase <b class="phase ${esc(data.phase)}">${esc(data.phase)}</b> · generated ${esc(data.generatedAt.toISOString())}</p></header>
${section('Phases over time', phaseTimeline(data))}
${section('Next move', nextMove(data))}
<div class="grid">
${section('Consistency of compared reads', lineChart(data.signals, consistency, { unit: '%', min: undefined, max: 100, empty: 'no compared reads recorded' }))}
${section('Reads served from the new store', lineChart(data.signals, readShare, { unit: '%', min: 0, max: 100, empty: 'no reads recorded' }))}
${section('Mirror lag (p99)', lineChart(data.signals, (p) => p.mirrorLagMs, { unit: 'ms', min: 0, max: undefined, empty: 'no mirror activity recorded' }))}
${section('Mirrored writes', lineChart(data.signals, (p) => p.mirrorApplied + p.reverseApplied, { unit: '', min: 0, max: undefined, empty: 'no mirrored writes recorded' }))}
</div>
<div class="grid">
${section('Backfill', backfill(data))}
${section('Audit chain', auditChain(data))}
${section('Quarantine by reason', reasonBars(data.quarantineByReason, 'nothing quarantined'))}
${section('Open dead letters by reason', reasonBars(data.deadLettersByReason, 'no open dead letters'))}
</div>
${section('Verifications', verifications(data))}
</main></body></html>
`
}

const PHASE_COLORS: Readonly<Record<string, string>> = {
  off: '#9aa0a6',
  shadow: '#8e7cc3',
  compare: '#3d85c6',
  ramp: '#e69138',
  cutover: '#cc4125',
  complete: '#38761d',
  rollback: '#a61c00',
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1f2328}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:15px;margin:0 0 10px}
section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:14px 16px;margin:0 0 16px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:0 16px}
.phase{padding:1px 8px;border-radius:10px;color:#fff;background:#555}
${Object.entries(PHASE_COLORS).map(([phase, color]) => `.phase.${phase}{background:${color}}`).join('')}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.muted{color:#656d76}
.bar{height:14px;background:#eaeef2;border-radius:7px;overflow:hidden}.bar>span{display:block;height:100%;background:#3d85c6}
svg{display:block;width:100%;height:auto}svg text{font-size:11px;fill:#656d76}
`

function section(title: string, body: string): string {
  return `<section><h2>${esc(title)}</h2>${body}</section>`
}

function consistency(p: SignalPoint): number | undefined {
  const all = p.compareEqual + p.compareMismatch
  return all === 0 ? undefined : (100 * p.compareEqual) / all
}

function readShare(p: SignalPoint): number | undefined {
  const all = p.readsOld + p.readsNew
  return all === 0 ? undefined : (100 * p.readsNew) / all
}

function phaseTimeline(data: ReportData): string {
  const entries = data.timeline
  if (entries.length === 0) return '<p class="muted">No phase change recorded yet (the phase comes from env flags).</p>'
  const start = entries[0]!.at.getTime()
  const span = Math.max(1, data.generatedAt.getTime() - start)
  const width = 1000
  const bars = entries
    .map((entry, i) => {
      const from = entry.at.getTime()
      const to = (entries[i + 1]?.at ?? data.generatedAt).getTime()
      const x = ((from - start) / span) * width
      const w = Math.max(2, ((to - from) / span) * width)
      return `<rect x="${x.toFixed(1)}" y="4" width="${w.toFixed(1)}" height="26" fill="${PHASE_COLORS[entry.phase] ?? '#555'}"><title>${esc(`${entry.phase}${entry.phase === 'ramp' ? ` ${entry.readPercent} %` : ''} from ${entry.at.toISOString()} by ${entry.actor}`)}</title></rect>`
    })
    .join('')
  const rows = entries
    .map((e) => `<tr><td>${esc(e.at.toISOString())}</td><td><span class="phase ${esc(e.phase)}">${esc(e.phase)}</span>${e.phase === 'ramp' ? ` ${e.readPercent} %` : ''}</td><td>${esc(e.actor)}</td></tr>`)
    .join('')
  return `<svg viewBox="0 0 ${width} 34" role="img" aria-label="phase timeline">${bars}</svg>
<table><thead><tr><th>at</th><th>phase</th><th>actor</th></tr></thead><tbody>${rows}</tbody></table>`
}

function nextMove(data: ReportData): string {
  const next = data.plan.next
  const net = data.plan.safetyNet
  const netText = net
    ? `<p>Safety net: ${net.releasedAt ? `released by ${esc(net.releasedBy ?? '?')}` : `${net.readOnlyDaysLeft.toFixed(1)} days of read-only old store left`}; revert window ${net.revertWindowOpen ? `open until ${esc(net.revertUntil.toISOString())}` : 'closed'}.</p>`
    : ''
  if (!next) return `<p class="muted">No forward move from ${esc(data.phase)}.</p>${netText}`
  const rows = next.gates
    .map((g) => `<tr><td class="${g.met ? 'ok' : 'bad'}">${g.met ? 'met' : 'unmet'}</td><td>${esc(g.gate)}</td><td>${esc(g.measured)}</td><td class="muted">${esc(g.required)}</td></tr>`)
    .join('')
  return `<p>${esc(next.from)} → ${esc(next.to)}: <b class="${next.met ? 'ok' : 'bad'}">${next.met ? 'allowed' : 'not yet'}</b></p>
${rows ? `<table><thead><tr><th></th><th>gate</th><th>measured</th><th>required</th></tr></thead><tbody>${rows}</tbody></table>` : ''}${netText}`
}

interface ChartOptions {
  readonly unit: string
  readonly min: number | undefined
  readonly max: number | undefined
  readonly empty: string
}

/** A line over time; buckets without a value leave a gap. */
function lineChart(points: readonly SignalPoint[], value: (p: SignalPoint) => number | undefined, options: ChartOptions): string {
  const known = points.flatMap((p) => {
    const v = value(p)
    return v === undefined || !Number.isFinite(v) ? [] : [{ at: p.at.getTime(), v }]
  })
  if (known.length === 0) return `<p class="muted">${esc(options.empty)}</p>`
  const [w, h, left, bottom] = [480, 160, 56, 20]
  const t0 = known[0]!.at
  const t1 = Math.max(known.at(-1)!.at, t0 + 1)
  const lo = options.min ?? Math.min(...known.map((k) => k.v))
  // A flat line still needs a scale: one unit above it.
  const hi = Math.max(options.max ?? Math.max(...known.map((k) => k.v)), lo + 1)
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * (w - left - 8)
  const y = (v: number) => 8 + (1 - (v - lo) / (hi - lo)) * (h - bottom - 8)
  const path = known.map((k, i) => `${i === 0 ? 'M' : 'L'}${x(k.at).toFixed(1)},${y(k.v).toFixed(1)}`).join('')
  const dots = known.length === 1 ? `<circle cx="${x(known[0]!.at)}" cy="${y(known[0]!.v)}" r="3" fill="#3d85c6"/>` : ''
  const label = (v: number) => `${Number.isInteger(v) ? v : v.toFixed(2)}${options.unit}`
  return `<svg viewBox="0 0 ${w} ${h}" role="img">
<line x1="${left}" y1="${y(hi)}" x2="${w - 8}" y2="${y(hi)}" stroke="#eaeef2"/><line x1="${left}" y1="${y(lo)}" x2="${w - 8}" y2="${y(lo)}" stroke="#d8dee4"/>
<text x="${left - 4}" y="${y(hi) + 4}" text-anchor="end">${esc(label(hi))}</text><text x="${left - 4}" y="${y(lo) + 4}" text-anchor="end">${esc(label(lo))}</text>
<text x="${left}" y="${h - 4}">${esc(new Date(t0).toISOString().slice(0, 16).replace('T', ' '))}</text><text x="${w - 8}" y="${h - 4}" text-anchor="end">${esc(new Date(t1).toISOString().slice(0, 16).replace('T', ' '))}</text>
<path d="${path}" fill="none" stroke="#3d85c6" stroke-width="2"/>${dots}</svg>`
}

function backfill(data: ReportData): string {
  const b = data.backfill
  if (b.ranges === 0) return '<p class="muted">Not started.</p>'
  const total = b.total ?? b.read
  const share = total > 0 ? Math.min(100, (100 * b.read) / total) : 0
  return `<div class="bar"><span style="width:${share.toFixed(1)}%"></span></div>
<p>${b.done}/${b.ranges} ranges done · ${b.read.toLocaleString('en')} read${b.total ? ` of ${b.total.toLocaleString('en')}` : ''} · ${b.written.toLocaleString('en')} written · ${b.skipped.toLocaleString('en')} already there · ${b.quarantined.toLocaleString('en')} quarantined</p>`
}

function auditChain(data: ReportData): string {
  const a = data.audit
  return a.ok ? `<p class="ok">Intact: ${a.entries ?? 0} entries verified.</p>` : `<p class="bad">Broken: ${esc(a.problem ?? 'unknown problem')}</p>`
}

function reasonBars(byReason: Readonly<Record<string, number>>, empty: string): string {
  const entries = Object.entries(byReason).sort((a, b) => b[1] - a[1])
  if (entries.length === 0) return `<p class="muted">${esc(empty)}</p>`
  const max = Math.max(...entries.map(([, n]) => n))
  return `<table><tbody>${entries
    .map(([reason, n]) => `<tr><td style="width:45%">${esc(reason)}</td><td><div class="bar"><span style="width:${((100 * n) / max).toFixed(1)}%;background:#cc4125"></span></div></td><td>${n}</td></tr>`)
    .join('')}</tbody></table>`
}

function verifications(data: ReportData): string {
  if (data.verifications.length === 0) return '<p class="muted">None yet.</p>'
  return `<table><thead><tr><th>#</th><th>kind</th><th>finished</th><th>result</th><th>records</th></tr></thead><tbody>${data.verifications
    .map(
      (v) =>
        `<tr><td>${esc(v.id)}</td><td>${esc(v.kind)}</td><td>${esc(v.finishedAt.toISOString())} <span class="muted">(${duration(data.generatedAt.getTime() - v.finishedAt.getTime())} ago)</span></td><td class="${v.consistent ? 'ok' : 'bad'}">${v.consistent ? 'consistent' : 'INCONSISTENT'}</td><td>${v.compared.toLocaleString('en')}</td></tr>`,
    )
    .join('')}</tbody></table>`
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
