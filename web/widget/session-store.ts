/*
 * What the widget remembers in localStorage, per endpoint (two widgets for two bots on one site
 * keep two sessions): the session to resume, and whether the user wants the replies spoken.
 * Storage can be unavailable (privacy modes, sandboxed iframes): the widget then still works, it
 * just forgets on reload.
 */

export interface SavedSession {
  sessionId: string;
  resumeToken: string;
}

export interface SessionStore {
  load(): SavedSession | null;
  save(session: SavedSession): void;
  clear(): void;
  voice(): boolean | null;
  setVoice(on: boolean): void;
}

export function sessionStore(endpoint: string, storage: Storage | null = safeLocalStorage()): SessionStore {
  const key = `parley:${endpoint}`;
  const voiceKey = `parley:voice:${endpoint}`;
  const read = (k: string): string | null => {
    try {
      return storage?.getItem(k) ?? null;
    } catch {
      return null;
    }
  };
  const write = (k: string, value: string | null): void => {
    try {
      if (value === null) storage?.removeItem(k);
      else storage?.setItem(k, value);
    } catch {
      // Full or forbidden: remembering is a convenience, never a reason to fail.
    }
  };
  return {
    load() {
      const raw = read(key);
      if (!raw) return null;
      try {
        const saved = JSON.parse(raw) as Partial<SavedSession>;
        return typeof saved.sessionId === 'string' && typeof saved.resumeToken === 'string' ? { sessionId: saved.sessionId, resumeToken: saved.resumeToken } : null;
      } catch {
        return null;
      }
    },
    save: (session) => write(key, JSON.stringify(session)),
    clear: () => write(key, null),
    voice() {
      const raw = read(voiceKey);
      return raw === null ? null : raw === '1';
    },
    setVoice: (on) => write(voiceKey, on ? '1' : '0'),
  };
}

function safeLocalStorage(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}
