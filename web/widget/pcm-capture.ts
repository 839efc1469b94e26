/*
 * The microphone's samples, continuously, for voice input: an AudioWorklet that posts 20 ms frames
 * to the page, or a ScriptProcessorNode where worklets cannot load (an old browser, a page whose
 * Content-Security-Policy refuses blob: scripts). Browser I/O only; what happens to the samples is
 * the caller's (speech-input.ts).
 */

export interface PcmCapture {
  /** Disconnects the nodes; no callback after it. Idempotent. */
  stop(): void;
}

/** Mono float samples at the context's rate, as they arrive. */
export type SampleSink = (samples: Float32Array) => void;

const PROCESSOR = 'parley-pcm-capture';

// Runs in the audio rendering thread: batches its 128-sample quanta into 20 ms frames, so the page
// gets 50 messages a second instead of 375.
const WORKLET_SOURCE = `
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Float32Array(Math.round(sampleRate / 50));
    this.filled = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        this.frame[this.filled++] = channel[i];
        if (this.filled === this.frame.length) {
          this.port.postMessage(this.frame.slice());
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor('${PROCESSOR}', Capture);
`;

const withWorklet = new WeakMap<BaseAudioContext, Promise<void>>();

/**
 * Starts capturing `source`. The capturing node is connected to the speakers, as browsers only run
 * nodes that lead there, but it outputs silence: the microphone is never heard.
 */
export async function capturePcm(context: AudioContext, source: AudioNode, onSamples: SampleSink): Promise<PcmCapture> {
  let stopped = false;
  const deliver = (samples: Float32Array) => {
    if (!stopped) onSamples(samples);
  };
  const node = (await workletNode(context, deliver)) ?? scriptNode(context, deliver);
  source.connect(node);
  node.connect(context.destination);
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      source.disconnect(node);
      node.disconnect();
      if (node instanceof AudioWorkletNode) node.port.close();
    },
  };
}

async function workletNode(context: AudioContext, deliver: SampleSink): Promise<AudioWorkletNode | null> {
  if (typeof AudioWorkletNode === 'undefined' || !context.audioWorklet) return null;
  try {
    let ready = withWorklet.get(context);
    if (!ready) {
      const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: 'text/javascript' }));
      ready = context.audioWorklet.addModule(url).finally(() => URL.revokeObjectURL(url));
      withWorklet.set(context, ready);
      ready.catch(() => withWorklet.delete(context));
    }
    await ready;
    const node = new AudioWorkletNode(context, PROCESSOR, { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
    node.port.onmessage = (e: MessageEvent<Float32Array>) => deliver(e.data);
    return node;
  } catch {
    return null;
  }
}

function scriptNode(context: AudioContext, deliver: SampleSink): ScriptProcessorNode {
  // 2048 samples: 43 ms at 48 kHz, short enough for the pre-roll and the detector's timing.
  const node = context.createScriptProcessor(2048, 1, 1);
  node.onaudioprocess = (e) => {
    deliver(new Float32Array(e.inputBuffer.getChannelData(0)));
    e.outputBuffer.getChannelData(0).fill(0);
  };
  return node;
}
