import type { ClientMessage, ServerEventOf, SpeechInput as SpeechInputMode } from '../../lib/protocol/v1';
import { concatBytes, pcmToBytes } from '../../lib/speech/pcm';
import { pcmConverter, type PcmConverter } from './pcm';
import type { LiveTranscriber } from './transcribe-live';
import { loadTranscribe, type TranscribeModule } from './transcribe-loader';
import { LiveAudio, PreRoll } from './utterance-audio';
import { MAX_UTTERANCE_BYTES, uploadMessages } from './utterance-upload';
import { DEFAULT_VAD_OPTIONS } from './vad';

/*
 * Voice input: what the user says, cut into utterances by the microphone's detector, becomes the
 * next user turn. The session says how (session.started.speechInput): `transcribe` streams each
 * utterance to Amazon Transcribe from here (transcribe-live.ts, loaded on demand) and sends the
 * transcript; `upload` sends the utterance's audio for the server to transcribe; null (no
 * recognizer) leaves the microphone to barge-in alone. Barge-in itself stays the controller's.
 */

/** Audio kept from before the detector fires: it fires 90 ms or more into the speech. */
export const PRE_ROLL_MS = 300;
/** A speech.renew this long before the grant's credentials expire (they last 15 minutes). */
const RENEW_AHEAD_MS = 120_000;
/** ... but never sooner than this after the last one: a skewed clock must not make a renewal loop. */
const MIN_RENEW_DELAY_MS = 30_000;
/** How long the first utterance waits for the live bundle to load before it is dropped. */
const LOAD_WAIT_MS = 5000;

/** What the user should see of voice input; the controller puts it on the view. */
export interface SpeechInputEvents {
  /** The words heard so far of the utterance being spoken ('' : listening, waiting for the text); null: nothing. */
  heard(text: string | null): void;
  /** A spoken turn went to the server: the user's bubble (live transcription knows its text already). */
  submitted(turnId: string, text: string | undefined): void;
  /** Something the user should know, as a friendly() code. */
  notice(code: string): void;
  /** How the session now transcribes (see `kind`): after every configure, a failed live bundle and stt.unavailable included. */
  modeChanged(kind: SpeechInputMode['mode'] | null): void;
}

export interface SpeechInputOptions {
  send: (message: ClientMessage) => boolean;
  sessionId: () => string | undefined;
  events: SpeechInputEvents;
  now?: () => number;
  /** Tests pass their own. */
  loadTranscribe?: () => Promise<TranscribeModule>;
}

type Recording =
  | { mode: 'upload'; turnId: string; startedAt: number; chunks: Uint8Array[]; bytes: number }
  | { mode: 'transcribe'; audio: LiveAudio };

/** An upload as long as one message may carry: it was sent when it filled. */
const full = (recording: Extract<Recording, { mode: 'upload' }>): boolean => recording.bytes >= MAX_UTTERANCE_BYTES;

export class SpeechInput {
  private mode: SpeechInputMode | null = null;
  private grant: ServerEventOf<'speech.access'> | undefined;
  private renewal: ReturnType<typeof setTimeout> | undefined;
  private live: LiveTranscriber | undefined;
  /** The live bundle loading (settled: `live` is set, or the load failed). */
  private loading: Promise<void> | undefined;
  private converter: { rate: number; to: number; convert: PcmConverter } | undefined;
  private preRoll = new PreRoll(0);
  private recording: Recording | undefined;
  private readonly now: () => number;

  constructor(private readonly options: SpeechInputOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** How the current session transcribes: 'transcribe', 'upload', or null (barge-in only). */
  get kind(): SpeechInputMode['mode'] | null {
    return this.mode?.mode ?? null;
  }

  /** The utterance being recorded; lets go of a live one whose transcriber has ended its audio. */
  private get current(): Recording | undefined {
    if (this.recording?.mode === 'transcribe' && this.recording.audio.done) this.recording = undefined;
    return this.recording;
  }

  /** session.started's answer (undefined: not asked for): a new session, a new grant. */
  configure(mode: SpeechInputMode | null | undefined): void {
    this.cancel();
    clearTimeout(this.renewal);
    this.grant = undefined;
    this.mode = mode && mode.encoding === 'pcm' ? mode : null;
    this.options.events.modeChanged(this.kind);
    if (!this.mode) return;
    this.preRoll = new PreRoll(Math.round((PRE_ROLL_MS * this.mode.sampleRate) / 1000) * 2);
    if (this.mode.mode === 'transcribe' && !this.live) this.loading = this.loadLive();
  }

  /** stt.unavailable: no recognizer after all (or the grant could not be renewed). */
  unavailable(): void {
    this.configure(null);
  }

  /** A (renewed) grant for Amazon Transcribe; the next one is asked for before it expires. */
  access(grant: ServerEventOf<'speech.access'>): void {
    this.grant = grant;
    clearTimeout(this.renewal);
    const delay = Math.max(MIN_RENEW_DELAY_MS, grant.expiresAt - Date.now() - RENEW_AHEAD_MS);
    this.renewal = setTimeout(() => this.options.send({ type: 'speech.renew' }), delay);
  }

  /** The microphone's samples, continuously while it is on. */
  samples(samples: Float32Array, sampleRate: number): void {
    const mode = this.mode;
    if (!mode) return;
    if (this.converter?.rate !== sampleRate || this.converter.to !== mode.sampleRate) {
      this.converter = { rate: sampleRate, to: mode.sampleRate, convert: pcmConverter(sampleRate, mode.sampleRate) };
    }
    // Little-endian, as the recognizers take it: on the usual little-endian host a view, no copy.
    const pcm = pcmToBytes(this.converter.convert.push(samples));
    const recording = this.current;
    if (!recording) this.preRoll.push(pcm);
    else if (recording.mode === 'transcribe') recording.audio.push(pcm);
    else this.record(recording, pcm);
  }

  /** The detector heard speech begin: a new utterance, starting with the pre-roll. */
  speechStart(): void {
    const mode = this.mode;
    const current = this.current;
    // Speaking again before Transcribe finished the last words: the same utterance goes on.
    if (current?.mode === 'transcribe') return current.audio.setSpeaking(true);
    if (!mode || current) return;
    // The detector needed this much speech to fire: that is when the words began.
    const startedAt = this.now() - DEFAULT_VAD_OPTIONS.minSpeechMs;
    const preRoll = this.preRoll.take();
    this.options.events.heard('');
    if (mode.mode === 'upload') {
      const recording: Recording = { mode: 'upload', turnId: crypto.randomUUID(), startedAt, chunks: [], bytes: 0 };
      this.recording = recording;
      this.record(recording, preRoll);
      return;
    }
    const audio = new LiveAudio();
    audio.push(preRoll);
    this.recording = { mode: 'transcribe', audio };
    void this.streamLive(audio, startedAt);
  }

  /** The user paused: upload the utterance, or tell the live transcriber (it ends the stream once it has the text). */
  speechEnd(): void {
    const recording = this.recording;
    if (!recording) return;
    if (recording.mode === 'transcribe') return recording.audio.setSpeaking(false);
    this.recording = undefined;
    if (!full(recording)) this.upload(recording);
  }

  /** Drops the utterance being recorded (the microphone went off, the session changed). */
  cancel(): void {
    const recording = this.recording;
    this.recording = undefined;
    if (recording?.mode === 'transcribe') recording.audio.end();
    if (recording) this.options.events.heard(null);
  }

  close(): void {
    this.cancel();
    clearTimeout(this.renewal);
  }

  private record(recording: Extract<Recording, { mode: 'upload' }>, pcm: Uint8Array): void {
    if (full(recording)) return;
    const room = MAX_UTTERANCE_BYTES - recording.bytes;
    const piece = pcm.length > room ? pcm.subarray(0, room) : pcm;
    recording.chunks.push(piece);
    recording.bytes += piece.length;
    // As long as one message may carry: sent now, the rest of the utterance is not heard.
    if (full(recording)) this.upload(recording);
  }

  private upload(recording: Extract<Recording, { mode: 'upload' }>): void {
    const messages = uploadMessages({
      turnId: recording.turnId,
      sessionId: this.options.sessionId(),
      pcm: concatBytes(recording.chunks),
      sinceFirstAudioMs: this.now() - recording.startedAt,
    });
    // All or nothing: a commit without its chunks would only fail on the server.
    for (const message of messages) {
      if (!this.options.send(message)) {
        this.options.events.heard(null);
        this.options.events.notice('connection.lost');
        return;
      }
    }
    this.options.events.heard(null);
    this.options.events.submitted(recording.turnId, undefined);
  }

  private async loadLive(): Promise<void> {
    try {
      const module = await (this.options.loadTranscribe ?? loadTranscribe)();
      this.live = module.liveTranscriber({
        access: () => this.grant,
        send: (message) => this.options.send(message),
        sessionId: () => this.options.sessionId(),
        onText: (_turnId, text) => this.options.events.heard(text),
        onFinal: (turnId, text) => {
          this.options.events.heard(null);
          this.options.events.submitted(turnId, text);
        },
        onEmpty: (_turnId, offline) => {
          this.options.events.heard(null);
          if (offline) this.options.events.notice('connection.lost');
        },
        onError: (_turnId, error) => {
          console.warn('<parley-chat>: live transcription failed', error);
          this.options.events.heard(null);
          this.options.events.notice('stt.failed');
        },
        now: this.now,
      });
    } catch (error) {
      console.warn('<parley-chat>: could not load live transcription', error);
      // Barge-in only from now on, and said so with the microphone already showing it.
      this.configure(null);
      this.options.events.notice('stt.unavailable');
    }
  }

  private async streamLive(audio: LiveAudio, startedAt: number): Promise<void> {
    // The first utterance may come before the bundle has loaded: its audio waits in the queue, for
    // the load, LOAD_WAIT_MS at most, or until the utterance is dropped (the microphone went off).
    if (!this.live) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, LOAD_WAIT_MS)));
      await Promise.race([this.loading ?? timeout, timeout, audio.whenEnded]);
      clearTimeout(timer);
    }
    if (!this.live || audio.done) {
      audio.end();
      this.options.events.heard(null);
      return;
    }
    await this.live.transcribe({ audio, startedAt });
  }
}
