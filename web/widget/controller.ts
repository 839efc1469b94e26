import type { HistoryMessage, ServerEvent } from '../../lib/protocol/v1';
import { AudioPlayer } from './audio-player';
import { Connection, type ConnectionState } from './connection';
import { friendly } from './friendly';
import { listen, type Microphone } from './microphone';
import { capturePcm } from './pcm-capture';
import type { SessionStore } from './session-store';
import { SpeechInput } from './speech-input';
import type { View } from './view';

/*
 * One widget's conversation: server events to the view, the user's actions to the server, speech
 * to the speakers, the user's speech to the next turn (speech-input.ts), and barge-in (the
 * microphone's voice activity, typing, Stop or Esc) to response.cancel with exactly how much of
 * the reply was heard.
 */

export interface ControllerOptions {
  endpoint: string;
  auth: { apiKey?: string; token?: string } | undefined;
  metadata: Record<string, string | number | boolean> | undefined;
  store: SessionStore;
  view: View;
  /** Speak the replies unless the user chose otherwise before. */
  voiceByDefault: boolean;
  /** Show the dialogue node in the header (for bot authors). */
  debug: boolean;
  /** Tells the host page: `parley:node`, `parley:error`, `parley:barge-in`. */
  dispatch: (type: string, detail: unknown) => void;
}

const VOICE_FORMAT = { format: 'pcm', sampleRate: 16000 } as const;
/** What the microphone captures for voice input: what both recognizers take without conversion. */
const SPEECH_INPUT = { encoding: 'pcm', sampleRate: 16000 } as const;
const BLOCKED = 'Tap anywhere in the chat to hear the voice';
const STATUS: Record<Exclude<ConnectionState, 'ready'>, string> = {
  connecting: 'Connecting…',
  offline: 'Offline — reconnecting…',
  failed: 'Unavailable',
};

export class Controller {
  private readonly view: View;
  private readonly connection: Connection;
  private readonly player: AudioPlayer;
  private readonly speech: SpeechInput;
  private sessionId: string | undefined;
  /** session.started said this server has no recognizer (speechInput null). */
  private speechRefused = false;
  /** "Voice input is not available here" was said on this page. */
  private toldNoSpeechInput = false;
  private bubbles = new Map<string, HTMLElement>();
  /** The turn the bot is answering: Stop cancels it. */
  private runningTurn: string | undefined;
  /** Turns started and not completed: a voice switch waits for them. */
  private openTurns = new Set<string>();
  /** The user's choice; reaches the server with the next session.start. */
  private voice: boolean;
  /** The running session was started with the current voice choice. */
  private voiceApplied = true;
  /** This session sends PCM speech. */
  private speaks = false;
  private ended = false;
  /** Why the next session.started comes: a reload shows "resumed", a voice switch says so itself. */
  private reason: 'load' | 'voice' | 'restart' | 'reconnect' = 'load';
  private mic: Microphone | null = null;
  private micStarting = false;
  private node: string | null = null;
  private connectionState: ConnectionState = 'connecting';
  private statusText = '';

  constructor(private readonly options: ControllerOptions) {
    this.view = options.view;
    this.voice = options.store.voice() ?? options.voiceByDefault;
    this.player = new AudioPlayer({ onPlayingChange: () => this.updateStop() });
    this.connection = new Connection({
      endpoint: options.endpoint,
      auth: options.auth,
      store: options.store,
      metadata: options.metadata,
      audio: () => (this.voice ? VOICE_FORMAT : null),
      speechInput: () => (this.voice ? SPEECH_INPUT : null),
      onEvent: (event) => this.onEvent(event),
      onState: (state, detail) => this.onConnection(state, detail),
    });
    this.speech = new SpeechInput({
      send: (message) => this.connection.send(message),
      sessionId: () => this.sessionId,
      events: {
        heard: (text) => this.view.setHeard(text),
        submitted: (turnId, text) => this.spoken(turnId, text),
        notice: (code) => this.view.addNote(friendly(code), code !== 'stt.unavailable'),
        // Whatever changed it (a new session, stt.unavailable, a live bundle that would not load),
        // the microphone shows what it does now.
        modeChanged: () => this.showMic(),
      },
    });
    this.view.setVoice(this.voice);
    this.showMic();
  }

  start(): void {
    this.connection.open();
  }

  close(): void {
    this.speech.close();
    this.connection.close();
    this.player.stop();
    this.mic?.stop();
    this.mic = null;
  }

  /** Back online or visible again: reconnect now instead of waiting for the backoff. */
  wake(): void {
    this.connection.wake();
  }

  // --- the user ------------------------------------------------------------------------------------

  submit(text: string): void {
    if (this.ended) return;
    this.unlockAudio();
    if (this.player.playing) this.interrupt(false); // a new message talks over the bot
    const turnId = crypto.randomUUID();
    if (!this.connection.send({ type: 'input.text', turnId, text })) {
      this.view.addNote(friendly('connection.lost'), true);
      return;
    }
    this.view.addMessage('user', text);
    this.setRunning(turnId);
  }

  /** Typing while the bot speaks stops it, as speaking over it would. */
  typing(text: string): void {
    if (this.player.playing && text.trim()) this.interrupt(false);
  }

  stop(): void {
    if (this.runningTurn || this.player.playing) this.interrupt(true);
  }

  toggleVoice(): void {
    this.voice = !this.voice;
    this.options.store.setVoice(this.voice);
    this.view.setVoice(this.voice);
    if (this.voice) this.unlockAudio();
    else {
      this.player.stop(); // silent at once; the reply stays on screen
      this.stopMic();
    }
    this.showMic();
    this.updateStop();
    this.voiceApplied = false;
    this.applyVoiceWhenIdle();
  }

  async toggleMic(): Promise<void> {
    if (this.mic) return this.stopMic();
    if (this.micStarting) return;
    this.micStarting = true;
    this.unlockAudio();
    try {
      const context = this.player.context();
      this.mic = await listen({
        context,
        onSpeechStart: () => {
          this.showMic(true);
          // Barge-in: the user speaks while the bot does. What they say is still their next input.
          if (this.player.playing) this.interrupt(true);
          this.speech.speechStart();
        },
        onSpeechEnd: () => {
          this.showMic();
          this.speech.speechEnd();
        },
        capture: (source) => capturePcm(context, source, (samples) => this.speech.samples(samples, context.sampleRate)),
      });
      this.showMic();
    } catch (err) {
      const name = (err as { name?: string }).name;
      this.view.addNote(friendly(name === 'NotAllowedError' || name === 'SecurityError' ? 'microphone.denied' : 'microphone.unavailable'), true);
      this.showMic();
    } finally {
      this.micStarting = false;
    }
  }

  restart(): void {
    this.player.stop(); // the old conversation goes quiet; session.stop ends it as it is
    this.view.clear();
    this.view.setHint(null);
    this.view.setEnded(false);
    this.bubbles = new Map();
    this.setRunning(undefined);
    this.reason = 'restart';
    if (this.ended) {
      this.ended = false;
      this.connection.startNew();
    } else {
      this.connection.startOver();
    }
  }

  /** Browsers start audio only from a user gesture: called from clicks and keys in the widget. */
  unlockAudio(): void {
    if (!this.voice) return;
    void this.player.unlock().then(() => {
      if (this.statusText === BLOCKED) this.showStatus();
    });
  }

  // --- the server ----------------------------------------------------------------------------------

  private onConnection(state: ConnectionState, detail?: { code: string; message: string }): void {
    this.options.dispatch('parley:connection', { state });
    this.connectionState = state;
    if (state !== 'ready') {
      this.view.setReady(false);
      this.setRunning(undefined);
      this.openTurns = new Set();
    }
    if (state === 'offline') this.reason = 'reconnect';
    if (state === 'failed' && detail) {
      this.view.addNote(friendly(detail.code), true);
      this.options.dispatch('parley:error', detail);
    }
    this.showStatus();
  }

  private showStatus(text?: string): void {
    const state = this.connectionState;
    const online = this.options.debug && this.node ? `Online · at “${this.node}”` : 'Online';
    this.statusText = text ?? (state === 'ready' ? online : STATUS[state]);
    this.view.setStatus(this.statusText);
    this.view.host.dataset.connection = state;
  }

  private onEvent(event: ServerEvent): void {
    switch (event.type) {
      case 'session.started':
        this.ended = false;
        this.sessionId = event.sessionId;
        this.speech.configure(event.speechInput);
        this.speechRefused = event.speechInput === null;
        this.view.setHeard(null);
        this.node = event.node;
        this.speaks = event.audio?.format === 'pcm';
        this.voiceApplied = true;
        this.view.setEnded(false);
        this.view.setReady(true);
        if (this.reason !== 'load' || event.resumed) this.view.focusInput();
        this.showStatus();
        // A resumed session's notes follow its history, which replaces the log.
        if (!event.resumed) {
          this.view.clear();
          this.bubbles = new Map();
          this.sessionNotes();
        }
        return;
      case 'session.history':
        return this.showHistory(event.messages, event.earlier);
      case 'speech.access':
        return this.speech.access(event);
      case 'input.transcript':
        // What the server heard in an uploaded utterance; nothing: no turn follows, listen again.
        this.view.setHint(null);
        if (event.text.trim() === '') return;
        this.view.addMessage('user', event.text);
        return this.setRunning(event.turnId);
      case 'turn.started':
        this.openTurns.add(event.turnId);
        return;
      case 'turn.completed':
        this.openTurns.delete(event.turnId);
        if (event.turnId === this.runningTurn) this.setRunning(undefined);
        this.view.setHint(null);
        return this.applyVoiceWhenIdle();
      case 'response.status':
        return this.view.setHint(event.status === 'typing' ? 'Typing' : 'Still working', true);
      case 'response.filler':
        // Said while the bot waits on something slow: a passing hint, not the reply.
        return this.view.setHint(event.text);
      case 'response.text.delta': {
        this.view.setHint(null);
        const bubble = this.bubbles.get(event.turnId);
        if (bubble) this.view.appendText(bubble, event.text);
        else this.bubbles.set(event.turnId, this.view.addMessage('bot', event.text, { streaming: true }));
        return;
      }
      case 'response.text.done': {
        this.view.setHint(null);
        const bubble = this.bubbles.get(event.turnId);
        if (bubble) this.view.finish(bubble, event.text);
        else this.bubbles.set(event.turnId, this.view.addMessage('bot', event.text));
        return;
      }
      case 'response.audio.delta':
        if (!this.voice || !this.speaks) return;
        this.player.push(event);
        if (this.player.blocked) this.showStatus(BLOCKED);
        return;
      case 'response.audio.clear':
        return this.player.clear(event.itemId);
      case 'node.transition':
        this.node = event.to;
        this.view.host.dataset.node = event.to;
        this.options.dispatch('parley:node', { from: event.from, to: event.to });
        if (this.options.debug) this.showStatus();
        return;
      case 'session.ended':
        this.ended = true;
        this.player.stop();
        this.view.setHint(null);
        this.view.setReady(false);
        this.view.setEnded(true);
        return;
      case 'session.stopped':
        return; // the connection starts the new session
      case 'error':
        if (event.code === 'stt.unavailable' && !event.turnId) return this.noSpeechInput(event.message);
        if (event.code === 'stt.failed') this.view.setHeard(null);
        if (event.turnId) {
          this.openTurns.delete(event.turnId);
          if (event.turnId === this.runningTurn) this.setRunning(undefined);
          this.view.setHint(null);
        }
        this.options.dispatch('parley:error', { code: event.code, message: event.message, turnId: event.turnId });
        this.view.addNote(friendly(event.code), true);
        return;
      default:
        return;
    }
  }

  private showHistory(messages: readonly HistoryMessage[], earlier: boolean): void {
    this.view.clear();
    this.bubbles = new Map();
    if (earlier) this.view.addNote('Earlier messages are not shown.');
    for (const m of messages) this.view.addMessage(m.role === 'user' ? 'user' : 'bot', m.text, { interrupted: m.interrupted === true });
    this.sessionNotes();
  }

  /** What the user should know about the session that just started or resumed. */
  private sessionNotes(): void {
    if (this.reason === 'voice') this.view.addNote(this.voice ? 'Voice on: replies are spoken.' : 'Voice off.');
    else if (this.reason !== 'restart' && this.view.hasMessages()) this.view.addNote('Conversation resumed.');
    if (this.voice && !this.speaks) this.view.addNote('Replies cannot be spoken here: text only.');
    if (this.speechRefused) this.tellNoSpeechInput();
    // Any later drop is a reconnect.
    this.reason = 'reconnect';
  }

  // --- barge-in ------------------------------------------------------------------------------------

  /**
   * Stops the bot: its audio at once and, with `running`, the turn it is answering. Each turn cut
   * short gets a response.cancel saying how much of its speech was heard, so the rest is forgotten.
   */
  private interrupt(running: boolean): void {
    const cancels = new Map<string, number | undefined>();
    for (const cut of this.player.stop()) cancels.set(cut.turnId, cut.playedMs);
    const turn = this.runningTurn;
    if (running && turn && !cancels.has(turn)) {
      this.player.silence(turn);
      cancels.set(turn, this.speaks ? this.player.playedMs(turn) : undefined);
    }
    for (const [turnId, playedMs] of cancels) {
      this.connection.send({ type: 'response.cancel', turnId, ...(playedMs === undefined ? {} : { playedMs }) });
      const bubble = this.bubbles.get(turnId);
      if (bubble) this.view.interrupted(bubble);
      this.options.dispatch('parley:barge-in', { turnId, playedMs });
    }
    if (running || (turn && cancels.has(turn))) this.setRunning(undefined);
    this.view.setHint(null);
    this.updateStop();
  }

  private stopMic(): void {
    this.speech.cancel();
    this.mic?.stop();
    this.mic = null;
    this.showMic();
  }

  private showMic(hearing = false): void {
    this.view.setMic({ shown: this.voice, on: this.mic !== null, hearing, transcribes: this.speech.kind !== null });
  }

  /** A spoken turn went out: live transcription knows its text, an upload waits for input.transcript. */
  private spoken(turnId: string, text: string | undefined): void {
    if (text === undefined) {
      this.view.setHint('Transcribing', true);
      return;
    }
    this.view.addMessage('user', text);
    this.setRunning(turnId);
  }

  /**
   * No recognizer on this server (or the grant could not be renewed): the microphone still stops
   * the bot, and says once that it does nothing more.
   */
  private noSpeechInput(message: string): void {
    this.speech.unavailable();
    this.view.setHeard(null);
    this.options.dispatch('parley:error', { code: 'stt.unavailable', message });
    // The error that follows session.started's null: the session's notes say it (after the history
    // a resume shows, which would wipe a note made now).
    if (!this.speechRefused) this.tellNoSpeechInput();
  }

  private tellNoSpeechInput(): void {
    if (this.toldNoSpeechInput) return;
    this.toldNoSpeechInput = true;
    this.view.addNote(friendly('stt.unavailable'));
  }

  private setRunning(turnId: string | undefined): void {
    this.runningTurn = turnId;
    this.updateStop();
  }

  private updateStop(): void {
    this.view.setStoppable(this.runningTurn !== undefined || this.player.playing);
  }

  /** A voice switch needs a new session.start: made once the bot has finished its reply. */
  private applyVoiceWhenIdle(): void {
    if (this.voiceApplied || this.ended || this.openTurns.size > 0 || this.connection.state !== 'ready') return;
    this.reason = 'voice';
    this.connection.reconnect();
  }
}
