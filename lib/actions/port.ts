/** A webhook request as the map rendered it: what a replay matches a recorded result by. */
export interface RenderedRequest {
  method: string;
  /** As rendered, before a relative URL is resolved against the deployment's base. */
  url: string;
  body?: string;
}

/** What running an action produced: its JSON result, or why it failed (seed 003's failure kinds). */
export type ActionOutcome = (
  | { ok: true; result: unknown; ms: number; attempts: number }
  | { ok: false; kind: 'action_failed' | 'action_timeout'; detail: string; ms: number; attempts: number }
) & {
  /** The request, when the map's templates rendered one. */
  request?: RenderedRequest;
};

/** Port: runs a named action of the map with the session's template context. */
export interface ActionRunner {
  run(name: string, context: TemplateContext): Promise<ActionOutcome>;
  /**
   * The action is likely to run soon (a partial transcript points to it): do what can be done
   * ahead without effects. Never fails; absent: nothing to warm.
   */
  warm?(name: string, context: TemplateContext): Promise<void>;
}

/** What templates see: `{{ session.variables.x }}`, `{{ session.language }}`, `{{ session.node }}`. */
export interface TemplateContext {
  session: {
    variables: Record<string, unknown>;
    language: string;
    node: string | null;
    id?: string;
  };
  /** The arguments of the LLM tool call that runs the action, as `{{ args.name }}`. */
  args?: Record<string, unknown>;
}
