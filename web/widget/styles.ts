/*
 * The widget's look, inside its shadow root so the host page's CSS cannot break it and ours cannot
 * leak out. Hosts theme it with CSS custom properties on the element (--parley-accent, …) and
 * ::part(panel|header|log|composer).
 */
export const STYLES = `
:host { --accent: var(--parley-accent, #2f6fed); --bg: var(--parley-background, #f6f7f9); --bot: var(--parley-bot-bubble, #fff);
  --text: var(--parley-text, #111827); --muted: var(--parley-muted, #6b7280); --radius: var(--parley-radius, 16px);
  display: block; height: 100%; min-height: 320px; font: 15px/1.45 var(--parley-font, system-ui, -apple-system, "Segoe UI", sans-serif);
  color: var(--text); contain: content; }
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.panel { height: 100%; display: flex; flex-direction: column; background: var(--bg); border-radius: var(--radius); overflow: hidden;
  border: 1px solid #e5e7eb; }
header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #fff; border-bottom: 1px solid #e5e7eb; }
.who { flex: 1; min-width: 0; display: flex; flex-direction: column; }
h2 { margin: 0; font-size: 1rem; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#status { font-size: .78rem; color: var(--muted); display: flex; align-items: center; gap: 6px; }
#status::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: #9ca3af; flex: none; }
:host([data-connection="ready"]) #status::before { background: #16a34a; }
:host([data-connection="offline"]) #status::before, :host([data-connection="failed"]) #status::before { background: #dc2626; }
button { font: inherit; color: inherit; border: 0; background: none; cursor: pointer; border-radius: 10px; }
button:focus-visible, textarea:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.tool { width: 40px; height: 40px; display: grid; place-items: center; color: var(--muted); }
.tool:hover { background: #f3f4f6; }
.tool[aria-pressed="true"] { color: var(--accent); background: color-mix(in srgb, var(--accent) 12%, transparent); }
.tool svg { width: 22px; height: 22px; }
#mic.hearing { animation: pulse 1s ease-in-out infinite; }
#log { flex: 1; overflow-y: auto; padding: 16px 12px; display: flex; flex-direction: column; gap: 8px; overscroll-behavior: contain; }
.msg { max-width: 85%; padding: 9px 13px; border-radius: 16px; white-space: pre-wrap; overflow-wrap: anywhere; }
.bot { background: var(--bot); align-self: flex-start; border-bottom-left-radius: 4px; box-shadow: 0 1px 2px #0000001a; }
.user { background: var(--accent); color: #fff; align-self: flex-end; border-bottom-right-radius: 4px; }
.bot.interrupted::after { content: " …"; color: var(--muted); }
.note { align-self: center; color: var(--muted); font-size: .8rem; text-align: center; }
.note.error { color: #b91c1c; }
#heard { align-self: flex-end; max-width: 85%; margin: 0 12px 6px auto; padding: 6px 12px; border: 1px dashed var(--accent);
  border-radius: 16px; border-bottom-right-radius: 4px; font-style: italic; white-space: pre-wrap; overflow-wrap: anywhere; }
#heard:empty::before { content: "Listening…"; color: var(--muted); }
#hint { min-height: 1.5em; padding: 0 14px 4px; color: var(--muted); font-size: .85rem; font-style: italic; }
.dots::after { content: "…"; display: inline-block; width: 1.2em; text-align: left; animation: dots 1.2s steps(4, end) infinite; overflow: hidden; vertical-align: bottom; }
form { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px calc(10px + env(safe-area-inset-bottom)); background: #fff; border-top: 1px solid #e5e7eb; }
textarea { flex: 1; resize: none; font: inherit; font-size: 16px; line-height: 1.4; max-height: 120px; padding: 9px 12px; border: 1px solid #d1d5db; border-radius: 12px; color: inherit; background: #fff; }
textarea:disabled { background: #f3f4f6; }
.round { width: 42px; height: 42px; flex: none; display: grid; place-items: center; border-radius: 50%; background: var(--accent); color: #fff; }
.round:disabled { opacity: .45; cursor: default; }
.round svg { width: 20px; height: 20px; }
#stop { background: #374151; }
#ended { padding: 14px; text-align: center; background: #fff; border-top: 1px solid #e5e7eb; }
#ended p { margin: 0 0 8px; color: var(--muted); }
#again { padding: 9px 16px; background: var(--accent); color: #fff; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
[hidden] { display: none !important; }
@keyframes dots { from { width: 0; } to { width: 1.2em; } }
@keyframes pulse { 50% { box-shadow: 0 0 0 6px color-mix(in srgb, var(--accent) 25%, transparent); } }
@media (prefers-reduced-motion: reduce) { .dots::after, #mic.hearing { animation: none; } }
@media (max-width: 480px) { .panel { border-radius: 0; border: 0; } .msg { max-width: 92%; } }
`;
