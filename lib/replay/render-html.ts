import { diffWords } from 'diff';
import { formatUsd } from '../cost/ledger';
import { leafChanges, type Difference } from './diff';
import { parsedArguments, type Observation, type ToolUse } from './observe';
import type { ActionRequest } from '../checkpoint/record';
import type { CostLedger } from '../cost/schema';
import { reportFails, type ReplayReport, type ReplayTurn } from './report';
import { brief } from './render-text';

/*
 * The report as one self-contained HTML page (inline CSS, no script, no fetches): a strip of turns
 * coloured by outcome to see the whole conversation at a glance, then one card per turn with the
 * recorded and the replayed reply side by side, word changes marked, and what else differs.
 */

const esc = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const LABEL: Record<ReplayTurn['status'], string> = { same: 'same', changed: 'changed', diverged: 'diverged', skipped: 'skipped', new: 'what-if' };

function replyDiff(before: string, after: string): { left: string; right: string } {
  const parts = diffWords(before, after);
  const left = parts.map((p) => (p.added ? '' : p.removed ? `<del>${esc(p.value)}</del>` : esc(p.value))).join('');
  const right = parts.map((p) => (p.removed ? '' : p.added ? `<ins>${esc(p.value)}</ins>` : esc(p.value))).join('');
  return { left, right };
}

const chips = (path: readonly string[], changed: boolean) =>
  `<div class="path${changed ? ' changed' : ''}">${path.map((n) => `<span class="chip">${esc(n)}</span>`).join('<span class="arrow">›</span>') || '<span class="muted">no node</span>'}</div>`;

const toolLine = (t: ToolUse) =>
  t.kind === 'llm_tool'
    ? `<code>${esc(t.name)}(${esc(brief(t.arguments, 200))})</code>`
    : `<code>${esc(t.method ?? '')} ${esc(t.url ?? t.name)}</code>${t.body === undefined ? '' : ` <code class="muted">${esc(brief(t.body, 200))}</code>`}${t.ok ? '' : ' <span class="bad">failed</span>'}`;

function side(title: string, o: Observation | undefined, reply: string, pathChanged: boolean): string {
  if (!o) return `<div class="side"><h4>${title}</h4><p class="muted">nothing recorded</p></div>`;
  return `<div class="side"><h4>${title}</h4>
  ${chips(o.path, pathChanged)}
  <div class="bubble bot">${reply || '<span class="muted">(no reply)</span>'}${o.llm ? ' <span class="tag">LLM</span>' : ''}</div>
  ${o.tools.length ? `<ul class="tools">${o.tools.map((t) => `<li>${toolLine(t)}</li>`).join('')}</ul>` : ''}
  ${o.endCall ? '<p><span class="tag end">END_CALL</span></p>' : ''}
  </div>`;
}

function differencesTable(differences: readonly Difference[]): string {
  const rows = differences.filter((d) => d.field !== 'reply' && d.field !== 'path');
  if (!rows.length) return '';
  const name = (d: Difference) => (d.field === 'variables' ? `variable <code>${esc(d.key ?? '')}</code>` : d.field === 'tools' ? esc(d.key ?? '') : esc(d.field.replace('_', ' ')));
  // A document that changed in places shows those places (`body.count`), not two whole documents.
  const leaves = (d: Difference) => (d.field === 'variables' || d.field === 'tools' ? leafChanges(d.before, d.after) : [{ path: '', before: d.before, after: d.after }]);
  return `<table class="diffs"><thead><tr><th>what</th><th>recorded</th><th>replay</th></tr></thead><tbody>${rows
    .flatMap((d) =>
      leaves(d).map(
        (l) => `<tr><td>${name(d)}${l.path ? ` <code class="muted">${esc(l.path)}</code>` : ''}</td><td class="old">${esc(brief(l.before, 400))}</td><td class="new">${esc(brief(l.after, 400))}</td></tr>`,
      ),
    )
    .join('')}</tbody></table>`;
}

const money = (l: CostLedger | undefined) => (l ? formatUsd(l.total) : '—');

function costTable(turn: ReplayTurn): string {
  const { original, replay } = turn.cost;
  if (!original && !replay) return '';
  const items = [...new Set([...(original?.lines ?? []), ...(replay?.lines ?? [])].map((l) => `${l.item}${l.detail ? ` ${l.detail}` : ''}`))];
  const find = (l: CostLedger | undefined, key: string) => l?.lines.find((x) => `${x.item}${x.detail ? ` ${x.detail}` : ''}` === key);
  const total = money(original) === money(replay) ? money(original) : `${money(original)} → ${money(replay)}`;
  return `<details class="cost"><summary>cost ${total}</summary><table><thead><tr><th>item</th><th>recorded</th><th>replay</th></tr></thead><tbody>${items
    .map((k) => {
      const o = find(original, k);
      const r = find(replay, k);
      return `<tr><td>${esc(k)}</td><td>${o ? `${o.quantity} ${esc(o.unit)} · ${formatUsd(o.usd)}` : '—'}</td><td>${r ? `${r.quantity} ${esc(r.unit)} · ${formatUsd(r.usd)}` : '—'}</td></tr>`;
    })
    .join('')}</tbody></table></details>`;
}

/** A webhook request's JSON body parsed, so its changes show field by field. */
const parsedRequest = (request: ActionRequest | undefined): unknown =>
  request?.body === undefined ? request : { ...request, body: parsedArguments(request.body) };

function requestChanges(recorded: ActionRequest | undefined, replayed: ActionRequest | undefined): string {
  if (recorded === undefined && replayed === undefined) return '';
  const changes = leafChanges(parsedRequest(recorded), parsedRequest(replayed));
  return `<ul>${changes.map((c) => `<li><code>${esc(c.path || 'request')}</code>: <code>${esc(brief(c.before, 200))}</code> → <code>${esc(brief(c.after, 200))}</code></li>`).join('')}</ul>`;
}

function card(turn: ReplayTurn): string {
  const reply = turn.differences.find((d) => d.field === 'reply');
  const pathChanged = turn.differences.some((d) => d.field === 'path');
  const texts = reply ? replyDiff(String(reply.before), String(reply.after)) : { left: esc(turn.original?.reply ?? ''), right: esc(turn.replay?.reply ?? '') };
  const input = turn.input.kind === 'text' ? `<div class="bubble user">${esc(turn.input.text ?? '')}</div>` : `<div class="muted">(${esc(turn.input.kind)})</div>`;
  const boxes = [
    ...turn.migrations.map((m) => `<div class="box info">The stored node <code>${esc(m.from)}</code> is not in this map: ${m.reason === 'renamed' ? 'renamed to' : 'gone; the session recovers in'} <code>${esc(m.to)}</code>.</div>`),
    ...turn.divergences.map(
      (d) =>
        `<div class="box warn"><b>${d.kind === 'llm' ? 'LLM request' : `Webhook ${esc(d.name)}`} not in the recording:</b> ${esc(d.reasons.join('; '))}${requestChanges(d.recorded, d.replayed)}</div>`,
    ),
    ...turn.notes.map((n) => `<div class="box note">${esc(n)}</div>`),
  ];
  const similarity = reply?.similarity !== undefined && reply.similarity < 1 ? ` <span class="tag">similarity ${reply.similarity.toFixed(2)}</span>` : '';
  return `<section class="turn ${turn.status}" id="turn-${turn.seq}">
<header><span class="seq">#${turn.seq}</span> <span class="badge ${turn.status}">${LABEL[turn.status]}</span>${similarity}
<a class="trace" href="${esc(turn.trace.url ?? `#turn-${turn.seq}`)}" title="trace id">${esc(turn.trace.traceId)}</a></header>
${input}
${boxes.join('\n')}
${turn.status === 'skipped' ? '' : `<div class="sides">${turn.status === 'new' ? '' : side('Recorded', turn.original, texts.left, pathChanged)}${side(turn.status === 'new' ? 'What-if' : 'Replay', turn.replay, texts.right, pathChanged)}</div>`}
${differencesTable(turn.differences)}
${costTable(turn)}
</section>`;
}

const CSS = `
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--muted:#6b7385;--line:#e3e6ec;--same:#2f9e62;--changed:#d64545;--diverged:#d99a1e;--skipped:#a0a7b4;--new:#4267d6}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--ink)}
main{max-width:1100px;margin:0 auto;padding:24px}h1{font-size:22px;margin:0 0 4px}.sub{color:var(--muted);margin:0 0 16px}
.summary{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.stat{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 16px;min-width:110px}
.stat b{display:block;font-size:24px}.stat.changed b{color:var(--changed)}.stat.diverged b{color:var(--diverged)}.stat.same b{color:var(--same)}
.verdict{font-size:18px;font-weight:600;padding:10px 16px;border-radius:10px;color:#fff;display:inline-block}.verdict.pass{background:var(--same)}.verdict.fail{background:var(--changed)}
.strip{display:flex;gap:4px;flex-wrap:wrap;margin:12px 0 24px}.strip a{width:26px;height:26px;border-radius:6px;display:grid;place-items:center;color:#fff;font-size:11px;text-decoration:none}
.strip .same{background:var(--same)}.strip .changed{background:var(--changed)}.strip .diverged{background:var(--diverged)}.strip .skipped{background:var(--skipped)}.strip .new{background:var(--new)}
.turn{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--skipped);border-radius:10px;padding:14px 18px;margin:0 0 14px}
.turn.same{border-left-color:var(--same)}.turn.changed{border-left-color:var(--changed)}.turn.diverged{border-left-color:var(--diverged)}.turn.new{border-left-color:var(--new)}
.turn header{display:flex;align-items:center;gap:8px;margin-bottom:8px}.seq{font-weight:700}.trace{margin-left:auto;font:12px ui-monospace,monospace;color:var(--muted)}
.badge{font-size:12px;text-transform:uppercase;letter-spacing:.04em;padding:2px 8px;border-radius:99px;color:#fff;background:var(--skipped)}
.badge.same{background:var(--same)}.badge.changed{background:var(--changed)}.badge.diverged{background:var(--diverged)}.badge.new{background:var(--new)}
.bubble{border-radius:14px;padding:8px 12px;margin:6px 0;max-width:100%;white-space:pre-wrap}.bubble.user{background:#e8eefc;display:inline-block}.bubble.bot{background:#f1f2f5}
.sides{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px}.side h4{margin:8px 0 4px;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.path{display:flex;flex-wrap:wrap;align-items:center;gap:4px}.chip{background:#eef0f4;border-radius:6px;padding:1px 8px;font:13px ui-monospace,monospace}.path.changed .chip{background:#fde8e8}.arrow{color:var(--muted)}
del{background:#fde2e2;color:#9b1c1c;text-decoration:line-through}ins{background:#dcf5e5;color:#14532d;text-decoration:none}
.tag{font-size:11px;background:#eef0f4;border-radius:4px;padding:1px 6px;color:var(--muted)}.tag.end{background:#1d2330;color:#fff}
.side{min-width:0}.tools{margin:6px 0;padding-left:18px}.tools code,.box code,td{overflow-wrap:anywhere}code{font:13px ui-monospace,monospace}.muted{color:var(--muted)}.bad{color:var(--changed);font-weight:600}
.box{border-radius:8px;padding:8px 12px;margin:6px 0;font-size:14px}.box.warn{background:#fff6e0;border:1px solid #f2d28b}.box.info{background:#e9f1ff;border:1px solid #bcd0f7}.box.note{background:#f4f4f6;color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}th{color:var(--muted);font-weight:500}
td.old{background:#fff5f5}td.new{background:#f3fbf6}details.cost summary{cursor:pointer;color:var(--muted);font-size:13px;margin-top:6px}
@media (prefers-color-scheme:dark){:root{--bg:#12151b;--card:#1b1f27;--ink:#e6e8ee;--muted:#9aa3b5;--line:#2c323d}.bubble.user{background:#24324f}.bubble.bot,.chip,.tag{background:#262b35}td.old{background:#3a2020}td.new{background:#1d3526}.box.note{background:#262b35}.box.warn{background:#3b3118;border-color:#6b5520}.box.info{background:#1c2b45;border-color:#33507f}del{background:#5a2020;color:#ffd7d7}ins{background:#1e4a2e;color:#d4ffe0}}
`;

export function renderHtml(report: ReplayReport): string {
  const s = report.summary;
  const fails = reportFails(report);
  const stat = (cls: string, n: number, label: string) => `<div class="stat ${cls}"><b>${n}</b>${label}</div>`;
  const cost =
    s.cost.original !== undefined || s.cost.replay !== undefined
      ? `<div class="stat"><b>${formatUsd(s.cost.original ?? 0)} → ${formatUsd(s.cost.replay ?? 0)}</b>cost recorded → replay</div>`
      : '';
  const trace = report.trace.url ? `<a href="${esc(report.trace.url)}">${esc(report.trace.traceId)}</a>` : `<code>${esc(report.trace.traceId)}</code>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Replay ${esc(report.sessionId)}: ${fails ? 'differences' : 'no differences'}</title><style>${CSS}</style></head>
<body><main>
<h1>Replay of session <code>${esc(report.sessionId)}</code></h1>
<p class="sub">against map “${esc(report.map.name)}” <code>${esc(report.map.digest)}</code> · ${esc(report.mode)} mode${report.from === undefined ? '' : ` · what-if from turn ${report.from}`} · from ${esc(report.source)} · trace ${trace} · ${esc(report.createdAt)}</p>
<span class="verdict ${fails ? 'fail' : 'pass'}">${fails ? 'The bot behaves differently' : s.new ? 'What-if run' : 'No differences'}</span>
<div class="summary">${stat('', s.turns, 'turns')}${stat('same', s.same, 'same')}${stat('changed', s.changed, 'changed')}${stat('diverged', s.diverged, 'diverged')}${stat('', s.skipped, 'skipped')}${s.migrations ? stat('', s.migrations, 'node migrations') : ''}${cost}</div>
<nav class="strip">${report.turns.map((t) => `<a class="${t.status}" href="#turn-${t.seq}" title="#${t.seq} ${LABEL[t.status]}">${t.seq}</a>`).join('')}</nav>
${report.turns.map(card).join('\n')}
</main></body></html>
`;
}
