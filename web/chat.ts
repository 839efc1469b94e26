import { EventAssembler, PROTOCOL_VERSION, type ClientMessage, type ServerEvent } from '../lib/protocol/v1';

/*
 * The minimal chat page `npm start` serves. The full embeddable widget comes later; this one
 * already speaks the real protocol, resumes from localStorage and streams replies.
 */

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = $<HTMLDivElement>('log');
const input = $<HTMLInputElement>('text');
const send = $<HTMLButtonElement>('send');
const status = $<HTMLSpanElement>('status');
const STORE_KEY = 'parley.session';

const FRIENDLY: Partial<Record<string, string>> = {
  'session.ended': 'This conversation has ended.',
  'session.not_found': 'That conversation is no longer available.',
  'auth.invalid': 'This page is not allowed to continue that conversation.',
  'auth.required': 'This chat needs an API key.',
  'server.internal': 'Something went wrong on our side. Please try again.',
};

let socket: WebSocket;
let bubbles = new Map<string, HTMLDivElement>();
let ended = false;
let sessionId: string | undefined;
/** The turn the bot is answering: the Stop button cancels it. */
let runningTurn: string | undefined;
const stop = $<HTMLButtonElement>('stop');

function setRunning(turnId: string | undefined): void {
  runningTurn = turnId;
  stop.hidden = turnId === undefined;
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
  socket.send(JSON.stringify(message));
}

function setReady(ready: boolean): void {
  input.disabled = send.disabled = !ready;
  if (ready) input.focus();
}

function connect(): void {
  const assembler = new EventAssembler();
  bubbles = new Map();
  socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`);
  socket.onopen = () => post({ type: 'hello', version: PROTOCOL_VERSION });
  socket.onclose = () => {
    setReady(false);
    status.textContent = 'disconnected — reconnecting…';
    setTimeout(connect, 1500);
  };
  socket.onmessage = (msg) => {
    let events: ServerEvent[];
    try {
      events = assembler.receive(String(msg.data));
    } catch {
      return; // a message from a newer server: ignore rather than break the page
    }
    events.forEach(onEvent);
  };
}

function startSession(fresh: boolean): void {
  const saved = fresh ? null : localStorage.getItem(STORE_KEY);
  const resume = saved ? (JSON.parse(saved) as { sessionId: string; resumeToken: string }) : null;
  post(resume ? { type: 'session.start', ...resume } : { type: 'session.start' });
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
      if (event.resumed) add('note', 'Conversation resumed.');
      return setReady(true);
    case 'turn.started':
      status.textContent = 'typing…';
      return;
    case 'turn.completed':
      if (event.turnId === runningTurn) setRunning(undefined);
      return;
    case 'response.text.delta': {
      const bubble = bubbles.get(event.turnId) ?? add('bot', '');
      bubbles.set(event.turnId, bubble);
      bubble.textContent += event.text;
      return;
    }
    case 'response.text.done': {
      const bubble = bubbles.get(event.turnId) ?? add('bot', '');
      bubble.textContent = event.text;
      bubbles.delete(event.turnId);
      if (status.textContent === 'typing…' || status.textContent?.endsWith('…')) status.textContent = 'connected';
      return;
    }
    case 'response.filler':
      // Said while the bot waits on something slow (an order webhook): a passing hint, not the reply.
      status.textContent = event.text;
      return;
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
      if (event.turnId && event.turnId === runningTurn) setRunning(undefined);
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
  add('user', text);
  input.value = '';
  const turnId = crypto.randomUUID();
  setRunning(turnId);
  post({ type: 'input.text', turnId, text, ...(sessionId ? { sessionId } : {}) });
});

stop.addEventListener('click', () => {
  if (runningTurn) post({ type: 'response.cancel', turnId: runningTurn });
  setRunning(undefined);
});

$<HTMLButtonElement>('restart').addEventListener('click', () => {
  log.replaceChildren();
  if (ended) {
    ended = false;
    startSession(true);
  } else {
    post({ type: 'session.stop', reason: 'user_restart' });
  }
});

connect();
