import { Controller } from './controller';
import { sessionStore } from './session-store';
import { View } from './view';

/*
 * <parley-chat>: the embeddable chat widget. Attributes (read when the element is added to the page):
 *   endpoint   the WebSocket URL (the stack's WebSocketUrl); default: the server that served the page
 *   api-key    sent in hello.auth when the stack requires an API key
 *   token      a JWT for hello.auth instead (the host page's signed-in user)
 *   bot-name   the header's title (default "Chat")
 *   voice      "on" to speak the replies unless the user turned the voice off before
 *   metadata   JSON object given to a new session (session.start.metadata)
 *   debug      show the dialogue node in the header
 * Events (bubbling, composed): parley:connection, parley:node, parley:error, parley:barge-in.
 */
export class ParleyChat extends HTMLElement {
  static readonly observedAttributes = ['bot-name'];
  private controller: Controller | null = null;
  private view: View | null = null;
  private readonly wake = () => this.controller?.wake();
  private readonly visible = () => {
    if (document.visibilityState === 'visible') this.controller?.wake();
  };

  connectedCallback(): void {
    if (this.controller) return;
    const root = this.shadowRoot ?? this.attachShadow({ mode: 'open' });
    const endpoint = this.getAttribute('endpoint') || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
    const apiKey = this.getAttribute('api-key') || undefined;
    const token = this.getAttribute('token') || undefined;
    this.view = new View(root, {
      submit: (text) => this.controller?.submit(text),
      typing: (text) => this.controller?.typing(text),
      stop: () => this.controller?.stop(),
      toggleVoice: () => this.controller?.toggleVoice(),
      toggleMic: () => void this.controller?.toggleMic(),
      restart: () => this.controller?.restart(),
    });
    this.view.setTitle(this.getAttribute('bot-name') || 'Chat');
    this.controller = new Controller({
      endpoint,
      auth: apiKey || token ? { ...(apiKey ? { apiKey } : {}), ...(token ? { token } : {}) } : undefined,
      metadata: parseMetadata(this.getAttribute('metadata')),
      store: sessionStore(endpoint),
      view: this.view,
      voiceByDefault: this.getAttribute('voice') === 'on',
      debug: this.hasAttribute('debug'),
      dispatch: (type, detail) => this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true })),
    });
    // A remembered voice choice has no gesture behind it: the first click or key in the widget lets audio play.
    for (const type of ['pointerdown', 'keydown'] as const) root.addEventListener(type, () => this.controller?.unlockAudio());
    window.addEventListener('online', this.wake);
    document.addEventListener('visibilitychange', this.visible);
    this.controller.start();
  }

  disconnectedCallback(): void {
    window.removeEventListener('online', this.wake);
    document.removeEventListener('visibilitychange', this.visible);
    this.controller?.close();
    this.controller = null;
  }

  attributeChangedCallback(name: string, _old: string | null, value: string | null): void {
    if (name === 'bot-name') this.view?.setTitle(value || 'Chat');
  }
}

function parseMetadata(raw: string | null): Record<string, string | number | boolean> | undefined {
  if (!raw) return undefined;
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, string | number | boolean>;
  } catch (err) {
    console.warn('<parley-chat>: the metadata attribute is not a JSON object; ignored', err);
    return undefined;
  }
}
