import { describe, expect, it } from 'vitest';
import { AudioPlayer, Timeline, base64ToBytes, pcm16ToFloat32, type AudioKind, type Chunk } from '../../web/widget/audio-player';

const LEAD = 0.05;
const chunk = (itemId: string, seq: number, duration: number, kind: AudioKind = 'speech', turnId = 't1'): Chunk<string> => ({
  turnId,
  itemId,
  kind,
  seq,
  duration,
  data: `${itemId}#${seq}`,
});
/** [data, start, end] of every sounding slot, in play order. */
const schedule = (t: Timeline<string>) =>
  t.order.flatMap((i) => i.slots.filter((s) => !s.dropped).map((s) => [s.data, round(s.start), round(s.end)] as const));
const round = (x: number) => Math.round(x * 1e6) / 1e6;

describe('Timeline: order and gap-free placement', () => {
  it('places chunks back to back from now + lead, each item after the one that arrived first', () => {
    const t = new Timeline<string>(LEAD);
    const p1 = t.add(chunk('a', 0, 1), 0);
    expect(p1.start.map((s) => [s.data, s.start])).toEqual([['a#0', LEAD]]);
    t.add(chunk('a', 1, 0.5), 0.2);
    t.add(chunk('b', 0, 2), 0.3);
    expect(schedule(t)).toEqual([
      ['a#0', 0.05, 1.05],
      ['a#1', 1.05, 1.55],
      ['b#0', 1.55, 3.55],
    ]);
  });

  it('a late chunk of an earlier item goes before the next item, which moves (if it has not started)', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('a', 0, 1), 0);
    t.add(chunk('b', 0, 1), 0);
    const plan = t.add(chunk('a', 1, 0.5), 0.5);
    expect(plan.start.map((s) => s.data)).toEqual(['a#1', 'b#0']);
    expect(schedule(t)).toEqual([
      ['a#0', 0.05, 1.05],
      ['a#1', 1.05, 1.55],
      ['b#0', 1.55, 2.55],
    ]);
  });

  it('plays an item in seq order: a chunk waits for the ones before it; duplicates are ignored', () => {
    const t = new Timeline<string>(LEAD);
    expect(t.add(chunk('a', 1, 1), 0).start).toEqual([]);
    expect(t.add(chunk('a', 0, 1), 0).start.map((s) => s.data)).toEqual(['a#0', 'a#1']);
    expect(t.add(chunk('a', 0, 1), 0).start).toEqual([]);
    expect(schedule(t)).toEqual([
      ['a#0', 0.05, 1.05],
      ['a#1', 1.05, 2.05],
    ]);
  });

  it('leaves placed chunks alone when nothing before them changed', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('a', 0, 1), 0);
    t.add(chunk('a', 1, 1), 0);
    expect(t.add(chunk('a', 2, 1), 0).start.map((s) => s.data)).toEqual(['a#2']);
    expect(t.add(chunk('b', 0, 1), 1.5).start.map((s) => s.data)).toEqual(['b#0']);
  });

  it('after running dry, new audio starts at now + lead', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('a', 0, 1), 0);
    expect(t.playing(1.2)).toBe(false);
    t.add(chunk('b', 0, 1), 3);
    expect(schedule(t).at(-1)).toEqual(['b#0', 3.05, 4.05]);
    expect(t.playing(3.5)).toBe(true);
  });
});

describe('Timeline: clear', () => {
  it('cuts a playing filler at now + lead and moves the answer up to that point, with no gap', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('f', 0, 1, 'filler'), 0);
    t.add(chunk('f', 1, 1, 'filler'), 0);
    t.add(chunk('s', 0, 2), 0.8);
    const plan = t.clear('f', 0.8);
    // f#0 plays (0.05..1.05), so it is cut at 0.85; f#1 never sounds; s#0 takes over at 0.85.
    expect(plan.stop.map(({ slot, at }) => [slot.data, round(at)])).toEqual([
      ['f#0', 0.85],
      ['f#1', 0],
    ]);
    expect(plan.start.map((s) => [s.data, round(s.start)])).toEqual([['s#0', 0.85]]);
    expect(schedule(t)).toEqual([
      ['f#0', 0.05, 0.85],
      ['s#0', 0.85, 2.85],
    ]);
    // Chunks of a cleared item that still arrive are dropped.
    expect(t.add(chunk('f', 2, 1, 'filler'), 0.9).start).toEqual([]);
  });

  it('a filler queued behind speech and cleared before it started never sounds; what follows moves up', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('s1', 0, 1), 0);
    t.add(chunk('f', 0, 1, 'filler'), 0);
    t.add(chunk('s2', 0, 1), 0);
    const plan = t.clear('f', 0.5);
    expect(plan.stop.map(({ slot, at }) => [slot.data, at])).toEqual([['f#0', 0]]);
    expect(schedule(t)).toEqual([
      ['s1#0', 0.05, 1.05],
      ['s2#0', 1.05, 2.05],
    ]);
  });

  it('a clear before the item’s first chunk drops the item when it comes', () => {
    const t = new Timeline<string>(LEAD);
    expect(t.clear('f', 0)).toEqual({ stop: [], start: [] });
    expect(t.add(chunk('f', 0, 1, 'filler'), 0).start).toEqual([]);
    expect(t.playing(0.1)).toBe(false);
  });
});

describe('Timeline: playedMs and stop', () => {
  it('counts only speech of the turn, up to now: a cleared filler and other turns do not count', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('f', 0, 2, 'filler'), 0);
    t.add(chunk('s', 0, 1), 0.5);
    t.add(chunk('s', 1, 1), 0.5);
    t.clear('f', 1); // filler 0.05..1.05, speech from 1.05
    expect(t.playedMs('t1', 1)).toBe(0);
    expect(t.playedMs('t1', 1.55)).toBe(500);
    expect(t.playedMs('t1', 2.55)).toBe(1500);
    expect(t.playedMs('t1', 10)).toBe(2000);
    expect(t.playedMs('other', 10)).toBe(0);
  });

  it('stop cuts everything now, reports the turns that still had audio, and ignores what they send later', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('g', 0, 1, 'speech', 'greeting'), 0); // played out by 1.05
    t.add(chunk('s', 0, 1, 'speech', 't1'), 2);
    t.add(chunk('s', 1, 1, 'speech', 't1'), 2);
    const { plan, cut } = t.stop(2.55);
    expect(cut).toEqual([{ turnId: 't1', playedMs: 500 }]);
    expect(plan.stop.map(({ slot, at }) => [slot.data, at])).toEqual([
      ['s#0', 0],
      ['s#1', 0],
    ]);
    expect(t.playing(2.55)).toBe(false);
    expect(t.playedMs('t1', 5)).toBe(500);
    expect(t.add(chunk('s', 2, 1, 'speech', 't1'), 3).start).toEqual([]);
    expect(t.add(chunk('n', 0, 1, 'speech', 't1'), 3).start).toEqual([]);
    // A new turn plays as usual.
    expect(t.add(chunk('x', 0, 1, 'speech', 't2'), 3).start.map((s) => s.data)).toEqual(['x#0']);
  });

  it('stop with a filler playing reports the turn with 0 ms of speech', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('f', 0, 2, 'filler'), 0);
    expect(t.stop(1).cut).toEqual([{ turnId: 't1', playedMs: 0 }]);
  });

  it('silence drops a turn’s audio before it comes', () => {
    const t = new Timeline<string>(LEAD);
    t.silence('t1');
    expect(t.add(chunk('s', 0, 1), 0).start).toEqual([]);
    expect(t.stop(0).cut).toEqual([]);
  });

  it('forgets earlier turns once they have played out and a new turn speaks', () => {
    const t = new Timeline<string>(LEAD);
    t.add(chunk('a', 0, 1, 'speech', 't1'), 0);
    t.add(chunk('b', 0, 1, 'speech', 't2'), 2);
    expect(t.order.map((i) => i.itemId)).toEqual(['b']);
  });
});

describe('pcm decoding', () => {
  it('reads 16-bit little-endian samples as floats', () => {
    const bytes = new Uint8Array([0x00, 0x00, 0xff, 0x7f, 0x00, 0x80, 0xff, 0xff, 0x07]);
    expect(Array.from(pcm16ToFloat32(bytes))).toEqual([0, 32767 / 32768, -1, -1 / 32768]);
    expect(Array.from(base64ToBytes(Buffer.from(bytes).toString('base64')))).toEqual(Array.from(bytes));
    expect(Array.from(pcm16ToFloat32(bytes.subarray(1, 5)))).toEqual([-256 / 32768, 127 / 32768]);
  });
});

// A stand-in for the bits of Web Audio the player uses.
class FakeNode {
  buffer: { duration: number } | null = null;
  onended: (() => void) | null = null;
  startedAt: number | undefined;
  stops: number[] = [];
  connect() {}
  start(when: number) {
    this.startedAt = when;
  }
  stop(when = 0) {
    this.stops.push(when);
  }
}
class FakeContext {
  currentTime = 0;
  state = 'running';
  nodes: FakeNode[] = [];
  destination = {};
  createBuffer(_channels: number, length: number, sampleRate: number) {
    const data = new Float32Array(length);
    return { duration: length / sampleRate, getChannelData: () => data };
  }
  createBufferSource() {
    const node = new FakeNode();
    this.nodes.push(node);
    return node;
  }
  resume() {
    this.state = 'running';
    return Promise.resolve();
  }
}

const delta = (itemId: string, seq: number, samples: number, kind: AudioKind = 'speech', turnId = 't1') => ({
  turnId,
  itemId,
  seq,
  kind,
  format: 'pcm',
  sampleRate: 16000,
  audio: Buffer.alloc(samples * 2).toString('base64'),
});

describe('AudioPlayer over a fake AudioContext', () => {
  it('starts sources back to back, replaces the moved ones on clear, and stops all on barge-in', () => {
    const ctx = new FakeContext();
    const changes: boolean[] = [];
    const player = new AudioPlayer({ createContext: () => ctx as unknown as AudioContext, onPlayingChange: (p) => changes.push(p) });
    player.push(delta('f', 0, 16000, 'filler')); // 1 s
    player.push(delta('s', 0, 8000)); // 0.5 s
    expect(ctx.nodes.map((n) => n.startedAt)).toEqual([0.05, 1.05]);
    expect(player.playing).toBe(true);

    ctx.currentTime = 0.5;
    player.clear('f');
    const [filler, oldSpeech, newSpeech] = ctx.nodes;
    expect(filler!.stops).toEqual([0.55]);
    expect(oldSpeech!.stops).toEqual([0]); // had not started: never sounds
    expect(newSpeech!.startedAt).toBeCloseTo(0.55, 9);

    ctx.currentTime = 0.8;
    expect(player.playedMs('t1')).toBe(250);
    const cut = player.stop();
    expect(cut).toEqual([{ turnId: 't1', playedMs: 250 }]);
    expect(newSpeech!.stops).toContain(0);
    expect(player.playing).toBe(false);
    expect(changes).toEqual([true, false]);
    player.push(delta('s', 1, 8000));
    expect(ctx.nodes).toHaveLength(3);
  });

  it('joins an odd byte to the item’s next chunk and reports running dry through `ended`', () => {
    const ctx = new FakeContext();
    const changes: boolean[] = [];
    const player = new AudioPlayer({ createContext: () => ctx as unknown as AudioContext, onPlayingChange: (p) => changes.push(p) });
    player.push({ ...delta('s', 0, 0), audio: Buffer.alloc(3).toString('base64') }); // 1 sample + 1 byte
    player.push({ ...delta('s', 1, 0), audio: Buffer.alloc(1).toString('base64') }); // + 1 byte = 1 sample
    expect(ctx.nodes).toHaveLength(2);
    expect(ctx.nodes[1]!.startedAt).toBeCloseTo(0.05 + 1 / 16000, 12);
    ctx.currentTime = 1;
    ctx.nodes[0]!.onended?.();
    expect(player.playing).toBe(true);
    ctx.nodes[1]!.onended?.();
    expect(player.playing).toBe(false);
    expect(changes).toEqual([true, false]);
  });
});
