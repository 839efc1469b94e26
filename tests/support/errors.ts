import { expect } from 'vitest';
import { ParleyError, type ParleyErrorCode } from '../../lib/errors';
import { loadDialogueMap } from '../../lib/flow/map';

/** The ParleyError `fn` throws, checked to carry `code` (the test fails when nothing is thrown). */
export function thrownParleyError(fn: () => unknown, code: ParleyErrorCode): ParleyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ParleyError);
    expect((err as ParleyError).code).toBe(code);
    return err as ParleyError;
  }
  throw new Error(`expected ${code}`);
}

/** The `map.invalid` error loading `input` throws. */
export const mapError = (input: unknown): ParleyError => thrownParleyError(() => loadDialogueMap(input), 'map.invalid');

/** The `config.invalid` error `fn` throws. */
export const configError = (fn: () => unknown): ParleyError => thrownParleyError(fn, 'config.invalid');
