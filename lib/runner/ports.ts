/** Monotonic milliseconds for durations, wall clock for timestamps: both injected so tests control time. */
export interface Clock {
  nowMs(): number;
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};
