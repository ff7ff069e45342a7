/**
 * Hard budgets (docs/holds.md): twelve agent turns of one end user start at once, each estimating 1,500
 * tokens, on a trial of 10,000 tokens. Each turn reserves its estimate first; the account's one writer
 * grants only what the tokens not yet held cover, so six turns run and six are refused before they
 * call the LLM. Without holds all twelve would have passed a canContinue() check and spent 18,000.
 *   node --import tsx examples/parallel-turns.ts                  (the local stack, processor running: npm run processor)
 *   AGENTMETER_MOCK=1 node --import tsx examples/parallel-turns.ts  (no server: the billing core in process)
 */
import { Agentmeter, isAgentmeterError } from "agentmeter";

const meter = await Agentmeter.connect();
const run = Date.now().toString(36);
const chat = meter.tokenManager({
  enterprise_id: "example-app",
  mozaiks_user_id: "example-creator",
  platform_user_id: `parallel-${run}`,
  workflow_name: "research",
  model: "gpt-4o-mini",
});
const start = await chat.initializeBudget();
console.log(`trial: ${start.available_tokens} tokens (${start.source})`);

const turn = async (i: number): Promise<{ ran: boolean; line: string }> => {
  try {
    // The estimate is the turn's prompt plus its max_tokens; the settle bills what it really used.
    const { hold, receipt } = await chat.withHold(1_500, async () => {
      // ... call the LLM here ...
      return { ResearchAgent: { prompt_tokens: 900, completion_tokens: 500 } };
    });
    return {
      ran: true,
      line: `turn ${i}: granted (hold ${hold.hold_id.slice(-6)}), billed ${receipt.tokens_used} tokens`,
    };
  } catch (error) {
    if (isAgentmeterError(error, "HOLD_DENIED"))
      return { ran: false, line: `turn ${i}: refused before the LLM call (${error.message})` };
    throw error;
  }
};
const outcomes = await Promise.all(Array.from({ length: 12 }, (_, i) => turn(i + 1)));
for (const { line } of outcomes) console.log(line);
const ran = outcomes.filter((outcome) => outcome.ran).length;
await chat.syncBudget(); // the view has seen every settle
const end = await chat.budgetStatus();
console.log(
  `${ran} of 12 turns ran; ${end.available_tokens} tokens left, ${end.state.held_tokens} held: the trial was never overdrawn`,
);
await meter.close();
