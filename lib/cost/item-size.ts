/*
 * DynamoDB's item size, by the rules of the developer guide ("Item sizes and formats"): attribute
 * names and strings count their UTF-8 bytes, binary its bytes, a number about one byte per two
 * significant digits plus one, null and booleans one byte, lists and maps three bytes plus one per
 * element. A standard write consumes one write request unit per started KB of the item.
 *
 * Numbers follow dynalite's exact rule (reverse-engineered from DynamoDB), so the units the store
 * predicts for a record match what dynalite and DynamoDB report (tests/unit/cost-item-size.test.ts).
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');

/** A DynamoDB number's size: its significant digits two to a byte, one more, one more for a sign. */
export function numberBytes(text: string): number {
  const negative = text.trim().startsWith('-');
  const [mantissa = '0', exp = '0'] = text.trim().replace(/^[-+]/, '').toLowerCase().split('e');
  const [int = '', frac = ''] = mantissa.split('.');
  const all = int + frac;
  const first = all.search(/[1-9]/);
  if (first < 0) return 1; // zero
  const digits = all.slice(first).replace(/0+$/, '').length;
  const e = int.length - 1 - first + Number(exp);
  return 1 + Math.ceil(digits / 2) + (digits % 2 || e % 2 ? 0 : 1) + (negative ? 1 : 0);
}

function valueBytes(value: AttributeValue): number {
  if (value.S !== undefined) return utf8(value.S);
  if (value.N !== undefined) return numberBytes(value.N);
  if (value.B !== undefined) return value.B.byteLength;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.SS !== undefined) return value.SS.reduce((sum, s) => sum + utf8(s), 0);
  if (value.NS !== undefined) return value.NS.reduce((sum, n) => sum + numberBytes(n), 0);
  if (value.BS !== undefined) return value.BS.reduce((sum, b) => sum + b.byteLength, 0);
  if (value.L !== undefined) return 3 + value.L.reduce((sum, v) => sum + 1 + valueBytes(v), 0);
  if (value.M !== undefined) return 3 + Object.keys(value.M).length + itemBytes(value.M);
  return 0;
}

/** The size DynamoDB bills an item by. */
export function itemBytes(item: Record<string, AttributeValue>): number {
  return Object.entries(item).reduce((sum, [name, value]) => sum + utf8(name) + valueBytes(value), 0);
}

/** Write request units of a standard (non-transactional) write of `item`: one per started KB, at least one. */
export const writeUnitsOf = (item: Record<string, AttributeValue>): number => Math.max(1, Math.ceil(itemBytes(item) / 1024));
