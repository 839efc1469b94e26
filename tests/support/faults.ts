import type { LlmPorts } from '../../lib/runner/llm-turn';
import type { SpeechDeps, TurnDeps } from '../../lib/session/dispatch';
import type { ConnectionSender } from '../../lib/transport/sender';

/*
 * Fault injection over the REAL adapters: every port a turn uses is wrapped in a Proxy that passes
 * each call through to the real adapter, except the call a test armed a fault for. Everything else
 * (DynamoDB, the gateway, the LLM server, the synthesizer) stays real.
 *
 *   throw   the call fails with the given error (for a stream: after `afterItems` items)
 *   hang    the call never settles, and ignores any abort signal, as a frozen socket does; only the
 *           test's `release()` ends it, with a FaultReleased error (so a dead turn can be cleaned up)
 *   stall   like hang, but on `release()` the real call runs: "hangs, then completes late"
 *
 * Calls are counted per `port.method` from the moment a fault is armed: `call: 1` (the default) is
 * the first call after `arm`, `call: 3` the third.
 */

export type FaultKind = 'throw' | 'hang' | 'stall';

export interface FaultSpec {
  kind: FaultKind;
  /** Which call after arming fails (1 = the next one). */
  call?: number;
  /** Streaming methods only: how many real items pass before the fault. */
  afterItems?: number;
  /** What `throw` throws. */
  error?: Error;
}

/** The error a hung call ends with when the test releases it. */
export class FaultReleased extends Error {
  override readonly name = 'FaultReleased';
}

/** The error `throw` uses unless the test gives one. */
export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
}

interface Armed {
  target: string;
  spec: FaultSpec;
  /** The call count of the target when the fault was armed. */
  base: number;
  fired: boolean;
  onFire: Array<() => void>;
}

interface Held {
  release(): void;
}

export class Faults {
  private readonly counts = new Map<string, number>();
  private armed: Armed[] = [];
  private held: Held[] = [];
  /** Every fault injected so far, in order. */
  readonly fired: Array<{ target: string; kind: FaultKind; call: number }> = [];

  /**
   * Arms a fault on `target` ('classifier.classify', 'store.commitTurn', 'llm.stream', …). The
   * returned promise resolves when the fault fires: the turn is then inside that stage.
   */
  arm(target: string, spec: FaultSpec): { fired: Promise<void> } {
    const armed: Armed = { target, spec, base: this.counts.get(target) ?? 0, fired: false, onFire: [] };
    this.armed.push(armed);
    return { fired: new Promise<void>((resolve) => armed.onFire.push(resolve)) };
  }

  /** How often `target` was called (faulted calls included). */
  calls(target: string): number {
    return this.counts.get(target) ?? 0;
  }

  /** Ends every hung call: `hang` rejects with FaultReleased, `stall` goes on with the real call. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) h.release();
  }

  /** Disarms every fault and releases every hung call. */
  reset(): void {
    this.armed = [];
    this.release();
  }

  /** Runs one call of `target`: the real one, or the fault armed for it. */
  invoke<R>(target: string, real: () => R, mode: 'async' | 'sync' | 'stream'): R {
    const n = (this.counts.get(target) ?? 0) + 1;
    this.counts.set(target, n);
    const armed = this.armed.find((a) => !a.fired && a.target === target && a.base + (a.spec.call ?? 1) === n);
    if (!armed) return real();
    armed.fired = true;
    const { spec } = armed;
    const fire = () => {
      this.fired.push({ target, kind: spec.kind, call: n });
      for (const f of armed.onFire) f();
    };
    const error = spec.error ?? new InjectedFault(`injected fault: ${target} (call ${n})`);
    if (mode === 'sync') {
      if (spec.kind !== 'throw') throw new Error(`${target} is synchronous: it can only throw`);
      fire();
      throw error;
    }
    if (mode === 'stream') return this.faultyStream(real as () => AsyncIterable<unknown>, spec, error, fire) as R;
    fire();
    if (spec.kind === 'throw') return Promise.reject(error) as R;
    return this.hold(spec.kind).then(() => real() as unknown) as R;
  }

  /** A promise that settles only on release (and never on any abort): rejects for hang, resolves for stall. */
  private hold(kind: 'hang' | 'stall'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.held.push({ release: () => (kind === 'stall' ? resolve() : reject(new FaultReleased('a hung call was released by the test'))) });
    });
  }

  private faultyStream(real: () => AsyncIterable<unknown>, spec: FaultSpec, error: Error, fire: () => void): AsyncIterable<unknown> {
    const faults = this;
    return {
      [Symbol.asyncIterator]() {
        let inner: AsyncIterator<unknown> | undefined;
        let passed = 0;
        let faulted = false;
        return {
          async next() {
            inner ??= real()[Symbol.asyncIterator]();
            if (!faulted && passed >= (spec.afterItems ?? 0)) {
              faulted = true;
              fire();
              if (spec.kind === 'throw') throw error;
              await faults.hold(spec.kind);
            }
            const item = await inner.next();
            if (!item.done) passed += 1;
            return item;
          },
          async return(value?: unknown) {
            await inner?.return?.(value);
            return { done: true as const, value: undefined };
          },
        };
      },
    };
  }
}

/**
 * The real `adapter` behind a Proxy: `port.method` calls go through `faults`. Methods on the
 * prototype (DynamoSessionStore, ApiGatewaySender) and getters keep working, with the adapter as
 * `this`. `streams` names methods that return an async iterable, `sync` those that return a value.
 */
export function withFaults<T extends object>(adapter: T, port: string, faults: Faults, kinds: { streams?: string[]; sync?: string[] } = {}): T {
  const streams = new Set(kinds.streams ?? []);
  const sync = new Set(kinds.sync ?? []);
  return new Proxy(adapter, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor') return value;
      const mode = streams.has(prop) ? 'stream' : sync.has(prop) ? 'sync' : 'async';
      return (...args: unknown[]) => faults.invoke(`${port}.${prop}`, () => (value as (...a: unknown[]) => unknown).apply(target, args), mode);
    },
  });
}

/** The LLM ports with faults on `llm.stream` (a stream) and `safety.check`. */
export function faultyLlm(ports: LlmPorts, faults: Faults): LlmPorts {
  return { ...ports, client: withFaults(ports.client, 'llm', faults, { streams: ['stream'] }), safety: withFaults(ports.safety, 'safety', faults) };
}

/** Speech with faults on `tts.synthesize` (a stream) and `tts.wordMarks`; `supports` stays plain. */
export function faultySpeech(speech: SpeechDeps, faults: Faults): SpeechDeps {
  const synthesizer = speech.synthesizer && withFaults(speech.synthesizer, 'tts', faults, { streams: ['synthesize'], sync: ['supports'] });
  return { ...speech, synthesizer };
}

/** The sender with faults on `sender.send`, `sender.sendBatch` and `sender.close`. */
export function faultySender(sender: ConnectionSender, faults: Faults): ConnectionSender {
  return withFaults(sender, 'sender', faults);
}

/**
 * Every port of a turn behind `faults`: classifier, faq (search is synchronous), actions (webhooks),
 * the LLM and its safety check, the synthesizer, the session store and the connection store.
 */
export function faultyDeps(deps: TurnDeps, faults: Faults): TurnDeps {
  return {
    ...deps,
    classifier: withFaults(deps.classifier, 'classifier', faults),
    faq: withFaults(deps.faq, 'faq', faults, { sync: ['search'] }),
    actions: withFaults(deps.actions, 'actions', faults),
    llm: deps.llm && faultyLlm(deps.llm, faults),
    speech: deps.speech && faultySpeech(deps.speech, faults),
    store: withFaults(deps.store, 'store', faults),
    connections: withFaults(deps.connections, 'connections', faults),
  };
}
