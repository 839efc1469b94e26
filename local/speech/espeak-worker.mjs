// The local synthesizer's worker thread (plain JavaScript, so it starts the same under node, tsx and
// vitest without a TypeScript loader). It loads eSpeak NG (GPL-3.0, the optional dependency
// @echogarden/espeak-ng-emscripten) once and serves one request at a time; local/speech/espeak.ts
// is the other side.
//
// In:  { type: 'synthesize', id, text, voice, audio: boolean, marks: boolean }
// Out: { type: 'ready', sampleRate }                  the module is loaded
//      { type: 'fatal', message }                     the module could not be loaded
//      { type: 'chunk', id, samples: ArrayBuffer, words? } 16-bit mono at sampleRate (transferred)
//      { type: 'words', id, words }                   word events of a request without audio
//      { type: 'done', id }  |  { type: 'error', id, message }
// Words are [text_position (1-based, in code points), word_length (code points), audio_position (ms)].
// A request is cancelled by storing its id in the shared `cancel` cell: synthesis stops at the next
// chunk (eSpeak's callback returns 1) and `done` follows.
import { parentPort, workerData } from 'node:worker_threads';

const { moduleUrl, cancel } = workerData;
const cancelled = new Int32Array(cancel);

const engine = (async () => {
  const { default: createModule } = await import(moduleUrl);
  const module = await createModule();
  const worker = new module.eSpeakNGWorker();
  return { worker, sampleRate: worker.get_samplerate() };
})();

engine.then(
  ({ sampleRate }) => parentPort.postMessage({ type: 'ready', sampleRate }),
  (err) => parentPort.postMessage({ type: 'fatal', message: String(err?.stack ?? err) }),
);

let currentVoice;

parentPort.on('message', async (msg) => {
  if (msg?.type !== 'synthesize') return;
  let e;
  try {
    e = await engine;
  } catch {
    return; // `fatal` was posted
  }
  const { id, text, voice, audio, marks } = msg;
  try {
    if (voice !== currentVoice) {
      const status = e.worker.set_voice(voice);
      if (status !== 0) throw new Error(`eSpeak has no voice "${voice}" (status ${status})`);
      currentVoice = voice;
    }
    e.worker.synthesize(text, (samples, events) => {
      if (Atomics.load(cancelled, 0) === id) return true;
      const words = marks ? events.filter((ev) => ev.type === 'word').map((ev) => [ev.text_position, ev.word_length, ev.audio_position]) : undefined;
      if (audio && samples && samples.length > 0) {
        // `samples` is a copy of the WASM heap (HEAP16.slice): its buffer can be given away.
        parentPort.postMessage({ type: 'chunk', id, samples: samples.buffer, words }, [samples.buffer]);
      } else if (words && words.length > 0) {
        parentPort.postMessage({ type: 'words', id, words });
      }
      return false;
    });
    parentPort.postMessage({ type: 'done', id });
  } catch (err) {
    parentPort.postMessage({ type: 'error', id, message: String(err?.message ?? err) });
  }
});
