/** `npm run chat -- [ws-url] [--api-key KEY]`: where to connect, and with which key. */
export function parseChatArgs(args: readonly string[], env: Record<string, string | undefined>): { url: string; apiKey: string | undefined } {
  const keyAt = args.indexOf('--api-key');
  const apiKey = keyAt >= 0 ? args[keyAt + 1] : env.PARLEY_API_KEY;
  const url = args.find((a, i) => !a.startsWith('--') && (keyAt < 0 || i !== keyAt + 1)) ?? `ws://127.0.0.1:${env.PARLEY_PORT ?? 8787}/`;
  return { url, apiKey };
}
