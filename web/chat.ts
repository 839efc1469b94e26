import { EventAssembler, PROTOCOL_VERSION, type ClientMessage, type ServerEvent } from '../lib/protocol/v1';
import { AudioPlayer } from './audio-player';

/*
 * The minimal chat page `npm start` serves. The full embeddable widget comes later; this one
 * already speaks the real protocol, resumes from localStorage, streams replies and, with Voice on,
 * plays the spoken replies.
 */

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = $<HTMLDivElement>('log');
const input = $<HTMLInputElement>('text');
const send = $<HTMLButtonElement>('send');
const stop = $<HTMLButtonElement>('stop');
const status = $<HTMLSpanElement>('status');
const hint = $<HTMLDivElement>('hint');
const voiceBox = $<HTMLInputElement>('voice');
const STORE_KEY = 'parley.session';
const VOICE_KEY = 'parley.voice';
const VOICE_FORMAT = { format: 'pcm', sampleRate: 16000 } as const;

const FRIENDLY: Partial<Record<string, string>> = {
  'session.ended': 'This conversation has ended.',
  'session.not_found': 'That conversation is no longer available.',
  'auth.invalid': 'This page is not allowed to continue that conversation.',
  'auth.required': 'This chat needs an API key.',
  'server.internal': 'Something went wrong on our side. Please try again.',
  'rate.limited': 'Slow down a little, then send that again.',
  'session.limit': 'This conversation has reached its limit. Reload the page to start a new one.',
  'turn.conflict': 'Another message was still being answered. Please send that again.',
};

let socket: WebSocket;
let bubbles = new Map<string, HTMLDivElement>();
let ended = false;
let sessionId: string | undefined;
/** The turn the bot is answering: the Stop button cancels it. */
let runningTurn: string | undefined;
/** Turns started and not completed (the greeting too): the voice switch waits for them. */
let openTurns = new Set<string>();
/** Voice asked for (the checkbox); it reaches the server with the next session.start. */
let voice = localStorage.getItem(VOICE_KEY) === '1';
/** The session was started with the current voice setting; false means reconnect once idle. */
let voiceApplied = true;
/** This connection's session sends pcm speech (session.started.audio). */
let speaks = false;
/** The next session.started comes from switching voice, not from a reload. */
let switchingVoice = false;
const BLOCKED = '🔇 click the page to hear the voice';
const player = new AudioPlayer({ onPlayingChange: updateStop });

function updateStop(): void {
  stop.hidden = runningTurn === undefined && !player.playing;
}

function setRunning(turnId: string | undefined): void {
  runningTurn = turnId;
  updateStop();
}

/** A passing line under the conversation: “typing…”, “still working…”, a filler’s text. */
function setHint(text: string | null): void {
  hint.textContent = text ?? '';
  hint.hidden = text === null;
}

function add(kind: 'bot' | 'user' | 'note' | 'note error', text: string): HTMLDivElement {
  const div = document.createElement('div');
  div.className = `msg ${kind}`;
  div.textContent = text;
  log.append(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

function post(message: ClientMessage): void {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function setReady(ready: boolean): void {
  input.disabled = send.disabled = !ready;
  if (ready) input.focus();
}

function connect(): void {
  const assembler = new EventAssembler();
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`);
  socket = ws;
  bubbles = new Map();
  openTurns = new Set();
  ws.onopen = () => post({ type: 'hello', version: PROTOCOL_VERSION });
  ws.onclose = () => {
    if (ws !== socket) return; // closed on purpose by reconnect()
    setReady(false);
    setRunning(undefined);
    status.textContent = 'disconnected — reconnecting…';
    setTimeout(connect, 1500);
  };
  ws.onmessage = (msg) => {
    if (ws !== socket) return;
    let events: ServerEvent[];
    try {
      events = assembler.receive(String(msg.data));
    } catch {
      return; // a message from a newer server: ignore rather than break the page
    }
    events.forEach(onEvent);
  };
}

/** A new connection that resumes the session, so session.start carries the new voice setting. */
function reconnect(): void {
  const old = socket;
  setReady(false);
  status.textContent = 'switching voice…';
  switchingVoice = true;
  connect();
  old.close();
}

function applyVoiceWhenIdle(): void {
  if (!voiceApplied && !ended && openTurns.size === 0 && socket.readyState === WebSocket.OPEN && sessionId) reconnect();
}

function startSession(fresh: boolean): void {
  const saved = fresh ? null : localStorage.getItem(STORE_KEY);
  const resume = saved ? (JSON.parse(saved) as { sessionId: string; resumeToken: string }) : null;
  voiceApplied = true;
  post({ type: 'session.start', ...(resume ?? {}), ...(voice ? { audio: VOICE_FORMAT } : {}) });
}

/**
 * Stops the bot: its audio at once and, with `running`, the turn it is answering. Each turn cut
 * short gets a response.cancel saying how much of its speech was heard, so the rest is forgotten.
 */
function interrupt(running: boolean): void {
  const cancels = new Map<string, number | undefined>();
  for (const cut of player.stop()) cancels.set(cut.turnId, cut.playedMs);
  if (running && runningTurn && !cancels.has(runningTurn)) {
    player.silence(runningTurn);
    cancels.set(runningTurn, speaks ? player.playedMs(runningTurn) : undefined);
  }
  for (const [turnId, playedMs] of cancels) post({ type: 'response.cancel', turnId, ...(playedMs === undefined ? {} : { playedMs }) });
  if (running || (runningTurn && cancels.has(runningTurn))) setRunning(undefined);
  updateStop();
}

function onEvent(event: ServerEvent): void {
  switch (event.type) {
    case 'hello.ack':
      return startSession(false);
    case 'session.started':
      sessionId = event.sessionId;
      localStorage.setItem(STORE_KEY, JSON.stringify({ sessionId: event.sessionId, resumeToken: event.resumeToken }));
      ended = false;
      status.textContent = event.resumed ? `resumed at “${event.node}”` : 'connected';
      speaks = event.audio?.format === 'pcm';
      if (switchingVoice) add('note', voice ? 'Voice on: replies are spoken.' : 'Voice off.');
      else if (event.resumed) add('note', 'Conversation resumed.');
      if (voice && !speaks) add('note', 'This server cannot speak to this page: replies are text only.');
      switchingVoice = false;
      return setReady(true);
    case 'turn.started':
      openTurns.add(event.turnId);
      return;
    case 'turn.completed':
      openTurns.delete(event.turnId);
      if (event.turnId === runningTurn) setRunning(undefined);
      setHint(null);
      return applyVoiceWhenIdle();
    case 'response.status':
      return setHint(event.status === 'typing' ? 'typing…' : 'still working…');
    case 'response.filler':
      // Said while the bot waits on something slow (an order webhook): a passing hint, not the reply.
      return setHint(event.text);
    case 'response.text.delta': {
      setHint(null);
      const bubble = bubbles.get(event.turnId) ?? add('bot', '');
      bubbles.set(event.turnId, bubble);
      bubble.textContent += event.text;
      return;
    }
    case 'response.text.done': {
      setHint(null);
      const bubble = bubbles.get(event.turnId) ?? add('bot', '');
      bubble.textContent = event.text;
      bubbles.delete(event.turnId);
      return;
    }
    case 'response.audio.delta':
      if (!voice || !speaks) return;
      player.push(event);
      if (player.blocked) status.textContent = BLOCKED;
      return;
    case 'response.audio.clear':
      return player.clear(event.itemId);
    case 'node.transition':
      status.textContent = `at “${event.to}”`;
      return;
    case 'session.ended':
      ended = true;
      localStorage.removeItem(STORE_KEY);
      add('note', 'The conversation has ended. Press “New conversation” to start again.');
      return setReady(false);
    case 'session.stopped':
      localStorage.removeItem(STORE_KEY);
      return startSession(true);
    case 'error':
      if (event.turnId) {
        openTurns.delete(event.turnId);
        if (event.turnId === runningTurn) setRunning(undefined);
        setHint(null);
      }
      if (event.code === 'session.not_found' || event.code === 'auth.invalid' || event.code === 'session.ended') {
        // A stale saved session: start a fresh one instead of showing the user a dead end.
        localStorage.removeItem(STORE_KEY);
        if (!ended) return startSession(true);
      }
      add('note error', FRIENDLY[event.code] ?? 'That did not work. Please try again.');
      return;
    default:
      return;
  }
}

$<HTMLFormElement>('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || ended) return;
  unlockAudio();
  if (player.playing) interrupt(false); // barge-in: a new message stops the bot talking
  add('user', text);
  input.value = '';
  const turnId = crypto.randomUUID();
  setRunning(turnId);
  post({ type: 'input.text', turnId, text, ...(sessionId ? { sessionId } : {}) });
});

// Barge-in: starting to type while the bot speaks stops it, as speaking over it would.
input.addEventListener('input', () => {
  if (player.playing && input.value.trim()) interrupt(false);
});

stop.addEventListener('click', () => interrupt(true));

voiceBox.checked = voice;
voiceBox.addEventListener('change', () => {
  voice = voiceBox.checked;
  localStorage.setItem(VOICE_KEY, voice ? '1' : '0');
  if (voice) unlockAudio(); // a user gesture: the browser lets the audio start
  else player.stop(); // silent at once; the reply stays on screen
  updateStop();
  voiceApplied = false;
  if (openTurns.size > 0) add('note', `Voice turns ${voice ? 'on' : 'off'} when the bot has finished this reply.`);
  applyVoiceWhenIdle();
});

/** Browsers start audio only from a user gesture: call this from click and key handlers. */
function unlockAudio(): void {
  if (!voice) return;
  void player.unlock().then(() => {
    if (status.textContent === BLOCKED) status.textContent = 'connected';
  });
}

// A remembered Voice setting has no gesture behind it: the first click or key lets the audio play.
for (const type of ['click', 'keydown'] as const) document.addEventListener(type, unlockAudio);

$<HTMLButtonElement>('restart').addEventListener('click', () => {
  player.stop(); // the old conversation goes quiet; session.stop ends it as it is
  log.replaceChildren();
  setHint(null);
  if (ended) {
    ended = false;
    startSession(true);
  } else {
    post({ type: 'session.stop', reason: 'user_restart' });
  }
});

connect();
