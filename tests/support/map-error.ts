import { expect } from 'vitest';
import { ParleyError } from '../../lib/errors';
import { loadDialogueMap } from '../../lib/flow/map';

/** The `map.invalid` error loading `input` throws (the test fails when it loads). */
export function mapError(input: unknown): ParleyError {
  try {
    loadDialogueMap(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ParleyError);
    expect((err as ParleyError).code).toBe('map.invalid');
    return err as ParleyError;
  }
  throw new Error('expected loadDialogueMap to throw');
}
