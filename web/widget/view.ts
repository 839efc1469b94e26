import { STYLES } from './styles';

/*
 * The widget's DOM: built once into the shadow root, then changed only through these methods, so
 * the controller never touches elements and the markup stays in one place. Text always goes in
 * through textContent: nothing from the server is parsed as HTML.
 */

const svg = (path: string): string => `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${path}</svg>`;
const ICONS = {
  speaker: svg('<path d="M11 5 6 9H2v6h4l5 4V5Z"/><path d="M15.5 8.5a5 5 0 0 1 0 7M19 5a10 10 0 0 1 0 14"/>'),
  muted: svg('<path d="M11 5 6 9H2v6h4l5 4V5Z"/><path d="m22 9-6 6M16 9l6 6"/>'),
  mic: svg('<rect x="9" y="2" width="6" height="12" rx="3"/><path d="M5 10a7 7 0 0 0 14 0M12 17v5"/>'),
  restart: svg('<path d="M3 12a9 9 0 1 0 3-6.7L3 8"/><path d="M3 3v5h5"/>'),
  send: svg('<path d="M22 2 11 13M22 2l-7 20-4-9-9-4 20-7Z"/>'),
  stop: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="6" y="6" width="12" height="12" rx="2" fill="currentColor"/></svg>',
};

const TEMPLATE = `
<style>${STYLES}</style>
<div class="panel" part="panel">
  <header part="header">
    <div class="who"><h2 id="title"></h2><span id="status">Connecting…</span></div>
    <button id="voice" class="tool" type="button" aria-pressed="false">${ICONS.muted}</button>
    <button id="mic" class="tool" type="button" aria-pressed="false" hidden>${ICONS.mic}</button>
    <button id="restart" class="tool" type="button" title="New conversation" aria-label="New conversation">${ICONS.restart}</button>
  </header>
  <div id="log" part="log" role="log" aria-live="polite" aria-label="Conversation"></div>
  <div id="heard" part="heard" hidden></div>
  <div id="hint" role="status" aria-live="polite"></div>
  <form id="composer" part="composer">
    <textarea id="text" rows="1" autocomplete="off" aria-label="Message" placeholder="Type a message" disabled></textarea>
    <button id="send" class="round" type="submit" aria-label="Send" disabled>${ICONS.send}</button>
    <button id="stop" class="round" type="button" aria-label="Stop the reply" title="Stop (Esc)" hidden>${ICONS.stop}</button>
  </form>
  <div id="ended" hidden><p>This conversation has ended.</p><button id="again" type="button">Start a new conversation</button></div>
</div>`;

export type Role = 'user' | 'bot';

export interface ViewHandlers {
  submit(text: string): void;
  typing(text: string): void;
  stop(): void;
  toggleVoice(): void;
  toggleMic(): void;
  restart(): void;
}

export class View {
  /** The <parley-chat> element: its data-* attributes let the host page style by state. */
  readonly host: HTMLElement;
  private readonly $: <T extends HTMLElement>(id: string) => T;
  private readonly log: HTMLElement;
  private readonly input: HTMLTextAreaElement;

  constructor(root: ShadowRoot, handlers: ViewHandlers) {
    root.innerHTML = TEMPLATE;
    this.host = root.host as HTMLElement;
    this.$ = <T extends HTMLElement>(id: string) => root.getElementById(id) as T;
    this.log = this.$('log');
    this.input = this.$<HTMLTextAreaElement>('text');
    const send = () => {
      const text = this.input.value.trim();
      if (!text || this.input.disabled) return;
      this.input.value = '';
      this.fit();
      handlers.submit(text);
    };
    this.$('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      send();
    });
    this.input.addEventListener('keydown', (e) => {
      // Enter sends, Shift+Enter starts a new line; an IME composing text keeps its Enter.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send();
      }
    });
    this.input.addEventListener('input', () => {
      this.fit();
      handlers.typing(this.input.value);
    });
    root.addEventListener('keydown', (e) => {
      if ((e as KeyboardEvent).key === 'Escape') handlers.stop();
    });
    this.$('stop').addEventListener('click', () => handlers.stop());
    this.$('voice').addEventListener('click', () => handlers.toggleVoice());
    this.$('mic').addEventListener('click', () => handlers.toggleMic());
    this.$('restart').addEventListener('click', () => handlers.restart());
    this.$('again').addEventListener('click', () => handlers.restart());
  }

  setTitle(title: string): void {
    this.$('title').textContent = title;
  }

  setStatus(text: string): void {
    this.$('status').textContent = text;
  }

  /** A passing line under the conversation (typing, still working, a filler's words); null hides it. */
  setHint(text: string | null, animated = false): void {
    const hint = this.$('hint');
    hint.textContent = text ?? '';
    hint.classList.toggle('dots', animated && text !== null);
  }

  /** Whether the user can type and send now. */
  setReady(ready: boolean): void {
    this.input.disabled = !ready;
    this.$<HTMLButtonElement>('send').disabled = !ready;
  }

  focusInput(): void {
    this.input.focus({ preventScroll: true });
  }

  setStoppable(on: boolean): void {
    this.$('stop').hidden = !on;
    this.$('send').hidden = on;
  }

  setVoice(on: boolean): void {
    const button = this.$('voice');
    button.setAttribute('aria-pressed', String(on));
    button.setAttribute('aria-label', on ? 'Replies are spoken: mute' : 'Replies are muted: speak them');
    button.title = on ? 'Mute the voice' : 'Speak the replies';
    button.innerHTML = on ? ICONS.speaker : ICONS.muted;
  }

  /**
   * The microphone button: shown only with voice on; `hearing` while the user's voice is heard;
   * `transcribes` when what the user says becomes their message (else it only stops the bot).
   */
  setMic(state: { shown: boolean; on: boolean; hearing?: boolean; transcribes?: boolean }): void {
    const button = this.$('mic');
    const talk = state.transcribes ? 'talk to the bot' : 'talk over the bot';
    button.hidden = !state.shown;
    button.setAttribute('aria-pressed', String(state.on));
    button.setAttribute('aria-label', state.on ? `Microphone on: ${state.transcribes ? 'speak your message' : 'speaking stops the bot'}. Turn off` : `Turn the microphone on to ${talk}`);
    button.title = state.on ? 'Microphone on' : 'Microphone off';
    button.classList.toggle('hearing', Boolean(state.hearing));
    this.host.dataset.voiceInput = state.transcribes ? 'on' : 'off';
  }

  /**
   * What the user is saying, as it is recognized ('' while only listening); null hides it. Not a
   * live region: the finished message is read once, as its bubble.
   */
  setHeard(text: string | null): void {
    const heard = this.$('heard');
    heard.hidden = text === null;
    heard.textContent = text ?? '';
  }

  setEnded(ended: boolean): void {
    this.$('ended').hidden = !ended;
    this.$('composer').hidden = ended;
    if (ended) this.$('again').focus({ preventScroll: true });
  }

  clear(): void {
    this.log.replaceChildren();
  }

  hasMessages(): boolean {
    return this.log.querySelector('.user, .bot') !== null;
  }

  /** A message bubble; `streaming` keeps screen readers from reading it before it is whole. */
  addMessage(role: Role, text: string, options: { streaming?: boolean; interrupted?: boolean } = {}): HTMLElement {
    const div = document.createElement('div');
    div.className = `msg ${role}`;
    div.setAttribute('part', `message ${role}`);
    div.textContent = text;
    if (options.streaming) div.setAttribute('aria-busy', 'true');
    if (options.interrupted) markInterrupted(div);
    return this.append(div);
  }

  /** A short line in the middle: "Conversation resumed.", an error in plain words. */
  addNote(text: string, error = false): HTMLElement {
    const div = document.createElement('div');
    div.className = error ? 'msg note error' : 'msg note';
    if (error) div.setAttribute('role', 'alert');
    div.textContent = text;
    return this.append(div);
  }

  appendText(bubble: HTMLElement, text: string): void {
    // Before the "(interrupted)" note, if the reply was cut while its text still streamed.
    bubble.insertBefore(document.createTextNode(text), bubble.querySelector('.sr'));
    this.stickToBottom();
  }

  finish(bubble: HTMLElement, text: string): void {
    bubble.textContent = text;
    bubble.removeAttribute('aria-busy');
    if (bubble.classList.contains('interrupted')) markInterrupted(bubble);
    this.stickToBottom();
  }

  interrupted(bubble: HTMLElement): void {
    bubble.removeAttribute('aria-busy');
    markInterrupted(bubble);
  }

  private append(el: HTMLElement): HTMLElement {
    const follow = this.atBottom();
    this.log.append(el);
    if (follow) this.log.scrollTop = this.log.scrollHeight;
    return el;
  }

  /** Streaming text keeps the view at the bottom, unless the user scrolled up to read. */
  private stickToBottom(): void {
    if (this.atBottom(120)) this.log.scrollTop = this.log.scrollHeight;
  }

  private atBottom(slack = 40): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < slack;
  }

  /** The textarea grows with its text up to its max height. */
  private fit(): void {
    this.input.style.height = 'auto';
    this.input.style.height = `${this.input.scrollHeight + 2}px`;
  }
}

function markInterrupted(bubble: HTMLElement): void {
  bubble.classList.add('interrupted');
  if (bubble.querySelector('.sr')) return;
  const note = document.createElement('span');
  note.className = 'sr';
  note.textContent = ' (interrupted)';
  bubble.append(note);
}
