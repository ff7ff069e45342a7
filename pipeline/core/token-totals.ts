/** Prompt and completion tokens, as every agent's usage carries them, and the token classes some report. */
export type AgentTokens = {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly cached_prompt_tokens?: number | undefined;
  readonly reasoning_tokens?: number | undefined;
  readonly audio_tokens?: number | undefined;
};

export type TokenTotals = { prompt_tokens: number; completion_tokens: number; total_tokens: number };

/**
 * The tokens of one usage record: its agents' prompt and completion tokens, and the sum of every token
 * (the token classes, counted beside prompt and completion, included: budgets count every token).
 */
export function tokenTotals(agents: Readonly<Record<string, AgentTokens>>): TokenTotals {
  let prompt = 0;
  let completion = 0;
  let classes = 0;
  for (const agent of Object.values(agents)) {
    prompt += agent.prompt_tokens;
    completion += agent.completion_tokens;
    classes += (agent.cached_prompt_tokens ?? 0) + (agent.reasoning_tokens ?? 0) + (agent.audio_tokens ?? 0);
  }
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion + classes,
  };
}
