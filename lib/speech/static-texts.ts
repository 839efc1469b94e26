import { languagesOf, localize, MESSAGE_KINDS, type DialogueMap, type Localized } from '../flow/map';

/** One line the bot may say that is known before any conversation: what the audio cache renders. */
export interface StaticText {
  text: string;
  language: string;
  /** Where it comes from in the map, as a path (`prompts.cache:welcome`, `messages.not_understood`). */
  source: string;
}

/** Text with a Mustache tag depends on the session: it cannot be rendered ahead of time. */
export const isTemplate = (text: string): boolean => text.includes('{{');

/**
 * Every static text of the map, for every language it speaks: the prompts (`cache:` and `filler:`),
 * the message of each failure kind, `llm.safe_response`, the clarifying prompt of every slot, and
 * what the runner also says word for word: FAQ answers and `tts` playlist items without a tag.
 * Texts are exactly what the runner hands the player (lib/flow/playlist.ts renderSay): localized the
 * same way (a missing translation falls back to the map's own language, and is then said with that
 * session language's voice). Deduplicated per language (the first source wins), templates (`{{`)
 * left out.
 */
export function staticTexts(map: DialogueMap): StaticText[] {
  const sources: [source: string, text: Localized][] = [
    ...Object.entries(map.prompts).map(([key, text]): [string, Localized] => [`prompts.${key}`, text]),
    ...MESSAGE_KINDS.map((kind): [string, Localized] => [`messages.${kind}`, map.messages[kind]]),
    ...(map.llm ? [['llm.safe_response', map.llm.safe_response] as [string, Localized]] : []),
    ...Object.entries(map.intents).flatMap(([intent, def]) =>
      Object.entries(def.slots).flatMap(([slot, s]): [string, Localized][] =>
        s.prompt === undefined ? [] : [[`intents.${intent}.slots.${slot}.prompt`, s.prompt]],
      ),
    ),
    // Said as they are too: FAQ answers, and `tts` playlist items without a tag (trimmed, as the runner says them).
    ...map.faq.map((entry): [string, Localized] => [`faq.${entry.id}.answer`, entry.answer]),
    ...Object.entries(map.states).flatMap(([name, state]) =>
      (['playlist', 'reprompt'] as const).flatMap((list) =>
        (state.system_response[list] ?? []).flatMap((item, i): [string, Localized][] =>
          item.type === 'tts' ? [[`states.${name}.system_response.${list}.${i}`, item.text_template]] : [],
        ),
      ),
    ),
  ];
  const out: StaticText[] = [];
  const seen = new Set<string>();
  for (const language of languagesOf(map)) {
    for (const [source, localized] of sources) {
      const raw = localize(localized, language, map.language);
      if (isTemplate(raw)) continue;
      const text = source.startsWith('states.') ? raw.trim() : raw;
      if (!text) continue;
      const id = JSON.stringify([language, text]);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({ text, language, source });
    }
  }
  return out;
}
