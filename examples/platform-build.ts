/**
 * Platform level (Level 1): a creator builds an app with a multi-agent workflow, drawing the platform
 * allowance; the session is compared with the workflow's earlier sessions (ClickHouse averages).
 *   node --import tsx examples/platform-build.ts            (the local stack, processor running)
 *   AGENTMETER_MOCK=1 node --import tsx examples/platform-build.ts
 */
import { Agentmeter } from "agentmeter";

const meter = await Agentmeter.connect();
const build = meter.platformTokenManager({
  enterprise_id: "example-app",
  mozaiks_user_id: `example-creator-${Date.now().toString(36)}`,
  workflow_name: "Generator",
});

const budget = await build.initializePlatformBudget();
console.log(`allowance left: ${budget.available_tokens} tokens`);
for (const agent of ["ConceptAgent", "ArchitectAgent", "CoderAgent"]) {
  if (!(await build.canContinue())) {
    await build.handleNoTokens();
    break;
  }
  build.trackAgentResponseTime(agent, 1_250);
  build.trackAgentMessage(agent, "output", "assistant");
  await build.trackPlatformUsage({ [agent]: { prompt_tokens: 5_000, completion_tokens: 3_000 } });
}
const analysis = await build.checkWorkflowCostThresholds();
console.log(`running cost vs averages: ${analysis.status}`);
const result = await build.finalizePlatformSession();
console.log(
  `session: ${result.session_summary.total_tokens} tokens, cost ${result.session_summary.total_cost}, agents ${result.session_summary.agents_used.join(", ")}`,
);
await meter.close();
