/*
 * The microphone: getUserMedia into an AnalyserNode, polled on a timer and fed to the energy
 * detector (vad.ts), for barge-in and to cut utterances; `capture` taps the same source for voice
 * input. The microphone is never connected to the speakers.
 */
import { EnergyVad, type VadOptions } from './vad';

export interface Microphone {
  /** Stops the tracks (the browser's recording indicator goes off), the graph and the timer; no callbacks after it. Idempotent. */
  stop(): void;
  /** Inside an utterance (between onSpeechStart and onSpeechEnd). */
  readonly speaking: boolean;
}

export interface ListenOptions {
  /** The page's AudioContext; it must be running (resumed after a user gesture) for anything to be heard. */
  context: AudioContext;
  onSpeechStart: () => void;
  onSpeechEnd?: () => void;
  vad?: Partial<VadOptions>;
  /** Default: navigator.mediaDevices.getUserMedia. */
  getUserMedia?: (constraints: MediaStreamConstraints) => Promise<MediaStream>;
  /** Also hands the microphone's signal to this (voice input); stopped with the microphone. */
  capture?: (source: AudioNode) => Promise<{ stop(): void }>;
}

const POLL_MS = 20;

/** Room for two polls, so a late timer loses no audio: a power of two, as AnalyserNode wants (2048 at 48 kHz). */
export function analyserSize(sampleRate: number): number {
  const wanted = (2 * POLL_MS * sampleRate) / 1000;
  return Math.min(32768, Math.max(32, 2 ** Math.ceil(Math.log2(wanted))));
}

/**
 * Asks for the microphone and listens. Rejects with getUserMedia's error (NotAllowedError when the
 * user or the page's permissions say no, NotFoundError without a microphone), or NotSupportedError
 * outside a secure context, where the browser has no navigator.mediaDevices.
 */
export async function listen(options: ListenOptions): Promise<Microphone> {
  const { context, onSpeechStart, onSpeechEnd } = options;
  const getUserMedia = options.getUserMedia ?? defaultGetUserMedia;
  // The browser's echo cancellation keeps the bot's own voice from the speakers out of the signal.
  const stream = await getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  const stopTracks = () => stream.getTracks().forEach((track) => track.stop());
  let source: MediaStreamAudioSourceNode;
  let analyser: AnalyserNode;
  let capture: { stop(): void } | undefined;
  try {
    source = context.createMediaStreamSource(stream);
    analyser = context.createAnalyser();
    analyser.fftSize = analyserSize(context.sampleRate);
    source.connect(analyser);
    capture = await options.capture?.(source);
  } catch (err) {
    stopTracks(); // a microphone left on with nobody listening would keep the recording indicator lit
    throw err;
  }

  const vad = new EnergyVad(options.vad);
  const buffer = new Float32Array(analyser.fftSize);
  const rate = context.sampleRate;
  let heardUntil = context.currentTime;
  let stopped = false;

  // Only the samples that arrived since the last poll go to the detector, so it sees one unbroken
  // signal. The audio clock also stands still while the context is suspended, and then nothing
  // is fed (the analyser would repeat its last buffer).
  const poll = () => {
    const now = context.currentTime;
    const fresh = Math.min(buffer.length, Math.round((now - heardUntil) * rate));
    if (fresh <= 0) return;
    heardUntil = now;
    analyser.getFloatTimeDomainData(buffer);
    const event = vad.push(buffer.subarray(buffer.length - fresh), rate, now * 1000);
    if (event === 'start') onSpeechStart();
    else if (event === 'end') onSpeechEnd?.();
  };
  const timer = setInterval(poll, POLL_MS);

  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      capture?.stop();
      source.disconnect();
      analyser.disconnect();
      stopTracks();
    },
    get speaking() {
      return !stopped && vad.speaking;
    },
  };
}

function defaultGetUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream> {
  if (!globalThis.navigator?.mediaDevices?.getUserMedia) {
    return Promise.reject(new DOMException('the microphone needs a secure context (https or localhost)', 'NotSupportedError'));
  }
  return navigator.mediaDevices.getUserMedia(constraints);
}
