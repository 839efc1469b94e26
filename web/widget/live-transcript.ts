/*
 * One utterance's text as Amazon Transcribe streams it: result after result, each partial replaced
 * by the next one with the same ResultId until that segment is final. Pure; the shapes are the
 * SDK's `Result` (structurally, so this module needs no SDK).
 *
 * With partial-results stabilization every item of a partial says whether it is `Stable`: it will
 * not change any more. The stable text (the final segments so far, then the stable words leading
 * the current partial) is what the server may act on early (`input.partial`); the shown text is
 * everything heard so far.
 */

export interface LiveItem {
  Content?: string | undefined;
  Type?: string | undefined;
  Stable?: boolean | undefined;
}

export interface LiveResult {
  ResultId?: string | undefined;
  IsPartial?: boolean | undefined;
  Alternatives?: { Transcript?: string | undefined; Items?: LiveItem[] | undefined }[] | undefined;
}

export class LiveTranscript {
  private readonly finals: string[] = [];
  private partial: { id: string | undefined; text: string; stable: string } | undefined;
  private finished = 0;

  apply(result: LiveResult): void {
    const alternative = result.Alternatives?.[0];
    const text = (alternative?.Transcript ?? '').trim();
    if (result.IsPartial) {
      this.partial = { id: result.ResultId, text, stable: stablePrefix(alternative?.Items ?? []) };
      return;
    }
    if (this.partial && (this.partial.id === result.ResultId || result.ResultId === undefined)) this.partial = undefined;
    this.finished += 1;
    if (text) this.finals.push(text);
  }

  /** Everything heard so far: the final segments and the current partial. */
  get shown(): string {
    return join([...this.finals, this.partial?.text ?? '']);
  }

  /** What will not change any more: the final segments and the stable start of the current partial. */
  get stable(): string {
    return join([...this.finals, this.partial?.stable ?? '']);
  }

  /** Transcribe has finished a segment (even an empty one) and is not working on another. */
  get settled(): boolean {
    return this.finished > 0 && this.partial === undefined;
  }

  /** The final segments: the utterance's transcript once the stream has ended. */
  get final(): string {
    return join(this.finals);
  }
}

/** The leading stable items, spaced as Transcribe spaces its transcripts (punctuation attached). */
export function stablePrefix(items: readonly LiveItem[]): string {
  let text = '';
  for (const item of items) {
    if (!item.Stable) break;
    const content = item.Content ?? '';
    if (!content) continue;
    text += item.Type === 'punctuation' || text === '' ? content : ` ${content}`;
  }
  return text;
}

const join = (parts: readonly string[]): string => parts.filter((p) => p !== '').join(' ');
