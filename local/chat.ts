import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import * as z from 'zod/mini';
import { EventAssembler, PROTOCOL_VERSION, type ClientMessage, type ServerEvent } from '../lib/protocol/v1';
import { parseChatArgs } from './chat-args';

// The protocol schemas are zod/mini, which loads no error-message locale; an unreadable server
// message is printed with zod's issues, so give them their English text (as classic zod did).
z.config(z.locales.en());

/**
 * `npm run chat`: a terminal client for the local runner (or any Parley endpoint). Ctrl+C while the
 * bot answers interrupts it; otherwise it quits.
 * Usage: npm run chat -- [ws-url] [--api-key KEY]
 */
const { url, apiKey } = parseChatArgs(process.argv.slice(2), process.env);

const socket = new WebSocket(url);
const assembler = new EventAssembler();
const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: 'you> ' });
let streaming = false;
let sessionId: string | undefined;
// Lines typed (or piped) before the bot is ready wait here: one turn at a time, in order.
const queue: string[] = [];
let ready = false;
let inputClosed = false;
/** The turn the bot is answering, so Ctrl+C can cancel it. */
let runningTurn: string | undefined;

function next(): void {
  const text = queue.shift();
  if (text !== undefined) {
    ready = false;
    if (!process.stdin.isTTY) print(`you> ${text}\n`);
    runningTurn = randomUUID();
    return post({ type: 'input.text', turnId: runningTurn, text, ...(sessionId ? { sessionId } : {}) });
  }
  ready = true;
  runningTurn = undefined;
  if (inputClosed) return post({ type: 'session.stop', reason: 'user_quit' });
  rl.prompt();
}

const post = (message: ClientMessage) => socket.send(JSON.stringify(message));
const print = (text: string): void => void process.stdout.write(text);

socket.on('open', () => post({ type: 'hello', version: PROTOCOL_VERSION, ...(apiKey ? { auth: { apiKey } } : {}) }));
socket.on('error', (err) => {
  print(`could not reach ${url}: ${err.message}\nIs the runner started (npm start)?\n`);
  process.exit(1);
});
socket.on('close', () => {
  print('\n[connection closed]\n');
  process.exit(0);
});
socket.on('message', (data) => {
  let events: ServerEvent[];
  try {
    events = assembler.receive(String(data));
  } catch (err) {
    return print(`[unreadable message from the server: ${(err as Error).message}]\n`);
  }
  events.forEach(onEvent);
});

function onEvent(event: ServerEvent): void {
  switch (event.type) {
    case 'hello.ack':
      return post({ type: 'session.start' });
    case 'session.started':
      sessionId = event.sessionId;
      print(`[session ${event.sessionId}, trace ${event.traceId}]\n`);
      return;
    case 'response.filler':
      return print(`bot> (${event.text})\n`);
    case 'response.status':
      // A long wait: say so, as a voice session would hear its neutral filler.
      return event.status === 'still_working' ? print('bot> (still working…)\n') : undefined;
    case 'response.text.delta':
      if (!streaming) print('bot> ');
      streaming = true;
      return print(event.text);
    case 'response.text.done':
      if (!streaming) print(`bot> ${event.text}`);
      streaming = false;
      return print('\n');
    case 'turn.completed':
      return next();
    case 'session.ended':
      print('[the bot ended the conversation]\n');
      return socket.close();
    case 'session.stopped':
      return socket.close();
    case 'error':
      print(`[error ${event.code}: ${event.message}]\n`);
      return next();
    default:
      return;
  }
}

rl.on('line', (line) => {
  const text = line.trim();
  if (text === '/quit') return post({ type: 'session.stop', reason: 'user_quit' });
  if (text) queue.push(text);
  if (ready) next();
  else if (!text) rl.prompt();
});
// Ctrl+C while the bot answers interrupts it (response.cancel); otherwise it quits.
rl.on('SIGINT', () => {
  if (runningTurn && !ready) {
    post({ type: 'response.cancel', turnId: runningTurn });
    print('\n[interrupted]\n');
    return;
  }
  rl.close();
});
rl.on('close', () => {
  inputClosed = true;
  if (ready && socket.readyState === socket.OPEN) post({ type: 'session.stop', reason: 'user_quit' });
});
