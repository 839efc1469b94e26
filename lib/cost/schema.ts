/*
 * The cost ledger's wire shape, in zod/mini with no other imports: the protocol module (bundled into
 * the chat widget) carries it in `turn.completed`, so it must stay as light as the protocol itself.
 * The arithmetic lives in ./ledger.
 */
import * as z from 'zod/mini';

export const COST_ITEMS = ['llm', 'tts', 'stt', 'lambda', 'dynamodb', 'apigateway'] as const;
export const CostItem = z.enum(COST_ITEMS);
export type CostItem = z.infer<typeof CostItem>;

/** One priced quantity: `usd` = `quantity` × `unitPrice`. */
export const CostLine = z.object({
  item: CostItem,
  quantity: z.number(),
  /** What one of `quantity` is: `token`, `character`, `second`, `GB-second`, `request`, `read unit`, `write unit`, `message`. */
  unit: z.string(),
  /** USD per one `unit`. */
  unitPrice: z.number(),
  usd: z.number(),
  /** Which model, engine or part of the item (`gpt-4o-mini input`, `polly neural`, `arm64, 256 MB`). */
  detail: z.optional(z.string()),
  /** The price table has no price for it (an unknown model or engine): priced at 0, never guessed. */
  unpriced: z.optional(z.boolean()),
});
export type CostLine = z.infer<typeof CostLine>;

export const CostLedger = z.object({
  currency: z.literal('USD'),
  lines: z.array(CostLine),
  /** The sum of the lines' `usd`. */
  total: z.number(),
  /** The `checked` date of the price table that priced it. */
  pricesChecked: z.optional(z.string()),
});
export type CostLedger = z.infer<typeof CostLedger>;
