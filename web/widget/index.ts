import { ParleyChat } from './element';

// One <script src="parley-chat.js"> defines the element; loading it twice is harmless.
if (!customElements.get('parley-chat')) customElements.define('parley-chat', ParleyChat);

export { ParleyChat };
