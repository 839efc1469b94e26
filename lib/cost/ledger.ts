/*
 * Pricing usage: a pure function of (usage, price table). The turn prices its own usage when it
 * commits (record.cost, turn.completed), and the replay report prices a replayed turn's usage and a
 * session's the same way.
 */
import type { Usage } from '../protocol/v1';
import { modelPrice, type PriceTable } from './prices';
import type { CostItem, CostLedger, CostLine } from './schema';

export { CostItem, CostLedger, CostLine } from './schema';

/** Sub-nano-dollar noise of float products is not money: every amount is kept to 1e-12 USD. */
const money = (usd: number) => Math.round(usd * 1e12) / 1e12;
/** A table price divided down to one unit, without the float tail (0.2 / 1e6 is 2.0000000000000002e-7). */
const perUnit = (price: number, per = 1) => Number((price / per).toPrecision(12));
const PER_MILLION = 1e6;

export interface CostOptions {
  /**
   * The engine of TTS characters the usage does not attribute to one (records from before
   * `ttsCharactersByEngine`); default `neural`, the dialogue map's default engine. A replay can pass
   * the record's `speech.voice.engine`.
   */
  ttsEngine?: string;
}

/**
 * The ledger of `usage` at `prices`: one line per model and kind of token, TTS engine, and AWS
 * meter, leaving out what is zero. A model or engine the table lacks is priced 0 and flagged
 * `unpriced` (never a guess, never an error). Absent metered fields (old records) price nothing.
 */
export function costOf(usage: Usage, prices: PriceTable, options: CostOptions = {}): CostLedger {
  const lines: CostLine[] = [];
  const add = (item: CostItem, quantity: number | undefined, unit: string, unitPrice: number | undefined, detail?: string) => {
    if (!quantity) return;
    lines.push({
      item,
      quantity,
      unit,
      unitPrice: unitPrice ?? 0,
      usd: money(quantity * (unitPrice ?? 0)),
      ...(detail === undefined ? {} : { detail }),
      ...(unitPrice === undefined ? { unpriced: true } : {}),
    });
  };

  for (const [model, tokens] of Object.entries(usage.llm)) {
    const price = modelPrice(prices, model);
    // OpenAI counts cached tokens inside the prompt tokens; they are billed at the cached rate instead.
    const cached = Math.min(tokens.cachedTokens, tokens.inputTokens);
    add('llm', tokens.inputTokens - cached, 'token', price && perUnit(price.input, PER_MILLION), `${model} input`);
    add('llm', cached, 'token', price && perUnit(price.cachedInput ?? price.input, PER_MILLION), `${model} cached input`);
    add('llm', tokens.outputTokens, 'token', price && perUnit(price.output, PER_MILLION), `${model} output`);
  }

  const byEngine = { ...usage.ttsCharactersByEngine };
  const attributed = Object.values(byEngine).reduce((sum, n) => sum + n, 0);
  const unattributed = usage.ttsCharacters - attributed;
  if (unattributed > 0) {
    const engine = options.ttsEngine ?? 'neural';
    byEngine[engine] = (byEngine[engine] ?? 0) + unattributed;
  }
  for (const [engine, characters] of Object.entries(byEngine)) {
    const perMillion = prices.tts[engine];
    add('tts', characters, 'character', perMillion === undefined ? undefined : perUnit(perMillion, PER_MILLION), engine);
  }

  const sttByProvider = { ...usage.sttSecondsByProvider };
  const sttUnattributed = usage.sttSeconds - Object.values(sttByProvider).reduce((sum, n) => sum + n, 0);
  if (sttUnattributed > 1e-9) sttByProvider.transcribe = (sttByProvider.transcribe ?? 0) + sttUnattributed;
  for (const [provider, seconds] of Object.entries(sttByProvider)) {
    const perMinute = provider === 'transcribe' ? prices.stt.perMinute : prices.stt.byProvider?.[provider];
    add('stt', seconds, 'second', perMinute === undefined ? undefined : perUnit(perMinute, 60), provider === 'transcribe' ? 'streaming' : provider);
  }

  const arch = prices.lambda.architecture;
  add('lambda', usage.lambdaGbSeconds, 'GB-second', perUnit(prices.lambda.perGbSecond[arch]), `${arch}${usage.lambdaMs === undefined ? '' : `, ${usage.lambdaMs} ms`}`);
  add('lambda', usage.lambdaRequests, 'request', perUnit(prices.lambda.perMillionRequests, PER_MILLION));

  add('dynamodb', usage.dynamoReadUnits, 'read request unit', perUnit(prices.dynamodb.perMillionReadUnits, PER_MILLION));
  add('dynamodb', usage.dynamoWriteUnits, 'write request unit', perUnit(prices.dynamodb.perMillionWriteUnits, PER_MILLION));

  add('apigateway', usage.apiGatewayMessages, 'message', perUnit(prices.apiGateway.perMillionMessages, PER_MILLION), `per started ${prices.apiGateway.messageBytes / 1024} KB`);

  return { currency: 'USD', lines, total: money(lines.reduce((sum, l) => sum + l.usd, 0)), pricesChecked: prices.checked };
}

/** Lines flagged `unpriced`: what the price table should learn (a model, an engine). */
export const unpricedLines = (ledger: CostLedger): CostLine[] => ledger.lines.filter((l) => l.unpriced);

/** USD as people read small amounts: 4 significant digits, never scientific notation. */
export function formatUsd(usd: number): string {
  if (usd === 0) return '$0';
  const digits = Math.max(2, 3 - Math.floor(Math.log10(Math.abs(usd))));
  return `$${usd.toFixed(Math.min(digits, 12))}`;
}
