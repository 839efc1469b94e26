import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../../lib/protocol/v1';
import { Connection } from '../../web/widget/connection';
import { friendly } from '../../web/widget/friendly';
import { sessionStore } from '../../web/widget/session-store';

/** A Storage over a Map; `broken` makes every call throw, as storage does in some privacy modes. */
function memoryStorage(broken = false): Storage & { data: Map<string, string> } {
  const data = new Map<string, string>();
  const guard = () => {
    if (broken) throw new DOMException('denied', 'SecurityError');
  };
  return {
    data,
    get length() {
      return data.size;
    },
    clear: () => data.clear(),
    key: (i) => [...data.keys()][i] ?? null,
    getItem: (k) => (guard(), data.get(k) ?? null),
    setItem: (k, v) => (guard(), void data.set(k, v)),
    removeItem: (k) => (guard(), void data.delete(k)),
  };
}

describe('the widget’s saved session', () => {
  it('keeps one session per endpoint, so two bots on one site do not share one', () => {
    const storage = memoryStorage();
    const a = sessionStore('wss://a.example/prod', storage);
    const b = sessionStore('wss://b.example/prod', storage);
    a.save({ sessionId: 's-a', resumeToken: 't-a' });
    expect(a.load()).toEqual({ sessionId: 's-a', resumeToken: 't-a' });
    expect(b.load()).toBeNull();
    a.clear();
    expect(a.load()).toBeNull();
  });

  it('remembers the voice choice; null until the user made one', () => {
    const store = sessionStore('wss://a.example/prod', memoryStorage());
    expect(store.voice()).toBeNull();
    store.setVoice(true);
    expect(store.voice()).toBe(true);
    store.setVoice(false);
    expect(store.voice()).toBe(false);
  });

  it('ignores a damaged entry instead of failing the widget', () => {
    const storage = memoryStorage();
    const store = sessionStore('wss://a.example/prod', storage);
    storage.data.set('parley:wss://a.example/prod', '{not json');
    expect(store.load()).toBeNull();
    storage.data.set('parley:wss://a.example/prod', JSON.stringify({ sessionId: 42 }));
    expect(store.load()).toBeNull();
  });

  it('works, forgetting, where storage throws or does not exist', () => {
    for (const storage of [memoryStorage(true), null]) {
      const store = sessionStore('wss://a.example/prod', storage);
      expect(() => store.save({ sessionId: 's', resumeToken: 't' })).not.toThrow();
      expect(store.load()).toBeNull();
      expect(store.voice()).toBeNull();
    }
  });
});

describe('what the user reads when something fails', () => {
  it('is a sentence for every error code, never the code itself', () => {
    for (const code of ErrorCode.options) {
      const text = friendly(code);
      expect(text, code).toMatch(/^[A-Z].*[.…]$/);
      expect(text).not.toContain(code);
      expect(text).not.toMatch(/[a-z]+\.[a-z_]+/);
    }
    expect(friendly('something.new')).toBe('That did not work. Please try again.');
  });
});

/** A WebSocket the test plays the server for: it records what the widget sends. */
class FakeSocket {
  static made: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  server(event: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(event) });
  }
  drop() {
    this.readyState = 3;
    this.onclose?.();
  }
}

const SESSION = { sessionId: '5b0c1f0e-3a51-4c8e-9d0e-2f7a7c1b9a01', resumeToken: 'r'.repeat(32) };
const started = (resumed: boolean) => ({ type: 'session.started', ...SESSION, traceId: '0'.repeat(32), resumed, node: 'welcome', audio: null });

function connectionUnderTest(saved: typeof SESSION | null) {
  FakeSocket.made = [];
  const store = sessionStore('ws://bot', memoryStorage());
  if (saved) store.save(saved);
  const states: string[] = [];
  const events: string[] = [];
  const connection = new Connection({
    endpoint: 'ws://bot',
    auth: { apiKey: 'k' },
    store,
    audio: () => null,
    onEvent: (e) => events.push(e.type),
    onState: (s) => states.push(s),
    WebSocket: FakeSocket as unknown as typeof WebSocket,
  });
  connection.open();
  return { connection, store, states, events, socket: () => FakeSocket.made.at(-1)! };
}

describe('the widget’s connection', () => {
  afterEach(() => vi.useRealTimers());

  it('says hello with its credentials, then resumes the saved session asking for its history', () => {
    const { socket, store, states } = connectionUnderTest(SESSION);
    socket().open();
    expect(socket().sent).toEqual([{ type: 'hello', version: '1', auth: { apiKey: 'k' } }]);
    socket().server({ type: 'hello.ack', version: '1' });
    expect(socket().sent[1]).toEqual({ type: 'session.start', ...SESSION, history: true });
    socket().server(started(true));
    expect(states.at(-1)).toBe('ready');
    expect(store.load()).toEqual(SESSION);
  });

  it('a saved session that is gone, ended or not ours starts a new one instead of a dead end', () => {
    for (const code of ['session.not_found', 'session.ended', 'auth.invalid']) {
      const { socket, store, events } = connectionUnderTest(SESSION);
      socket().open();
      socket().server({ type: 'hello.ack', version: '1' });
      socket().server({ type: 'error', code, message: 'x' });
      expect(socket().sent.at(-1), code).toEqual({ type: 'session.start' });
      expect(store.load()).toBeNull();
      expect(events).toEqual([]); // nothing for the user to read: a new session simply starts
    }
  });

  it('refused at hello (a wrong key) it stops: no retry can fix that', () => {
    vi.useFakeTimers();
    const { socket, states } = connectionUnderTest(null);
    socket().open();
    socket().server({ type: 'error', code: 'auth.invalid', message: 'bad key' });
    expect(states.at(-1)).toBe('failed');
    socket().drop();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.made).toHaveLength(1);
  });

  it('a dropped connection reconnects with growing delays and resumes', () => {
    vi.useFakeTimers();
    const { socket, states } = connectionUnderTest(null);
    socket().open();
    socket().server({ type: 'hello.ack', version: '1' });
    socket().server(started(false));
    socket().drop();
    expect(states.at(-1)).toBe('offline');
    vi.advanceTimersByTime(300); // the first retry comes after 0.5 s (± a quarter)
    expect(FakeSocket.made).toHaveLength(1);
    vi.advanceTimersByTime(400);
    expect(FakeSocket.made).toHaveLength(2);
    socket().drop(); // the retry fails too: the next one waits longer
    vi.advanceTimersByTime(700);
    expect(FakeSocket.made).toHaveLength(2);
    vi.advanceTimersByTime(700);
    expect(FakeSocket.made).toHaveLength(3);
    socket().open();
    socket().server({ type: 'hello.ack', version: '1' });
    expect(socket().sent.at(-1)).toEqual({ type: 'session.start', ...SESSION, history: true });
  });
});
