/**
 * App level (Level 2): an end user chats with an app until the trial runs out, the runtime pauses the
 * chat, a top-up arrives, the chat resumes and is finalized.
 *   node --import tsx examples/app-chat.ts                  (the local stack, processor running: npm run processor)
 *   AGENTMETER_MOCK=1 node --import tsx examples/app-chat.ts  (no server: the billing core in process)
 */
import { Agentmeter } from "agentmeter";

const meter = await Agentmeter.connect();
const run = Date.now().toString(36);
const chat = meter.tokenManager({
  enterprise_id: "example-app",
  mozaiks_user_id: "example-creator",
  platform_user_id: `enduser-${run}`,
  workflow_name: "chat",
  model: "gpt-4o-mini",
});

const start = await chat.initializeBudget();
console.log(`trial: ${start.available_tokens} tokens (${start.source})`);
let turns = 0;
while ((await chat.canContinue()) && turns < 50) {
  const t0 = Date.now();
  // ... call the LLM here; then report what each agent used:
  chat.trackAgentResponseTime("CustomerAgent", Date.now() - t0 + 300);
  chat.trackAgentMessage("CustomerAgent", "an answer", "assistant");
  await chat.trackUsage({ CustomerAgent: { prompt_tokens: 1_200, completion_tokens: 800 } });
  turns++;
  await chat.syncBudget(); // the view has seen this turn: the next answer is not older than it
}
const status = await chat.budgetStatus();
console.log(`after ${turns} turns: can continue ${status.can_continue}, reason ${status.pause_reason}`);
await chat.handleNoTokens();

await chat.topUp(20_000, 400_000); // 20,000 tokens bought for 0.40
while (!(await chat.canResumeChat())) await new Promise((resolve) => setTimeout(resolve, 100));
console.log(`resumed: ${await chat.resumeChat()}`);
await chat.trackUsage({ CustomerAgent: { prompt_tokens: 300, completion_tokens: 200 } });

const result = await chat.finalizeSession();
console.log(
  JSON.stringify(
    result.session_summary,
    (_key, value) => (typeof value === "bigint" ? value.toString() : value),
    2,
  ),
);
console.log(`vs workflow averages: ${result.cost_analysis.status}`);
await meter.close();
