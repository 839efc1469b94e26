import type { TemplateContext } from '../actions/port';
import type { SayItem } from './engine';
import { type DialogueMap, localize } from './map';
import { renderTemplate } from './template';

/** One thing the bot says, as text: speech belongs to the reply, a filler only bridges a wait. */
export interface Utterance {
  kind: 'speech' | 'filler';
  text: string;
  /** Where it came from: `cache:key`, `filler:key`, `tts:<state>`, `message:kind`, `slot:intent.slot`, `faq:id`. */
  source: string;
}

export interface RenderProblem {
  source: string;
  missing: string[];
}

/**
 * Turns what the flow decided to say into text. Static prompts are said as written (they can be
 * cached as audio); `tts` templates are rendered with the session. An item whose template reads a
 * variable that is not set is left out whole and reported, never said with a gap in it.
 */
export function renderSay(
  map: DialogueMap,
  items: readonly SayItem[],
  context: TemplateContext,
  where: string,
): { utterances: Utterance[]; problems: RenderProblem[] } {
  const language = context.session.language;
  const utterances: Utterance[] = [];
  const problems: RenderProblem[] = [];
  for (const item of items) {
    switch (item.type) {
      case 'cache':
      case 'filler': {
        const prompt = map.prompts[item.key];
        if (prompt === undefined) problems.push({ source: item.key, missing: [item.key] });
        else utterances.push({ kind: item.type === 'filler' ? 'filler' : 'speech', text: localize(prompt, language, map.language), source: item.key });
        break;
      }
      case 'tts': {
        const source = `tts:${where}`;
        const { text, missing } = renderTemplate(localize(item.text_template, language, map.language), context);
        if (missing.length) problems.push({ source, missing });
        else if (text.trim()) utterances.push({ kind: 'speech', text: text.trim(), source });
        break;
      }
      case 'message':
        utterances.push({ kind: 'speech', text: localize(map.messages[item.kind], language, map.language), source: `message:${item.kind}` });
        break;
      case 'text':
        utterances.push({ kind: 'speech', text: localize(item.text, language, map.language), source: item.source });
        break;
    }
  }
  return { utterances, problems };
}

/** The reply as one text: the speech utterances joined. */
export const replyText = (utterances: readonly Utterance[]): string =>
  utterances.filter((u) => u.kind === 'speech').map((u) => u.text).join(' ');
