import { describe, expect, it } from 'vitest';
import { parseChatArgs } from '../../local/chat-args';

describe('npm run chat arguments', () => {
  it('takes the URL given first (regression: it was ignored without --api-key)', () => {
    expect(parseChatArgs(['ws://127.0.0.1:8898/'], {})).toEqual({ url: 'ws://127.0.0.1:8898/', apiKey: undefined });
  });

  it('takes the key after --api-key, wherever the URL stands', () => {
    expect(parseChatArgs(['--api-key', 'k-123456', 'wss://x/prod'], {})).toEqual({ url: 'wss://x/prod', apiKey: 'k-123456' });
    expect(parseChatArgs(['wss://x/prod', '--api-key', 'k-123456'], {})).toEqual({ url: 'wss://x/prod', apiKey: 'k-123456' });
  });

  it('defaults to the local runtime on PARLEY_PORT and the key in PARLEY_API_KEY', () => {
    expect(parseChatArgs([], { PARLEY_PORT: '9000', PARLEY_API_KEY: 'env-key-1' })).toEqual({ url: 'ws://127.0.0.1:9000/', apiKey: 'env-key-1' });
    expect(parseChatArgs([], {}).url).toBe('ws://127.0.0.1:8787/');
  });
});
