import { type AccountKey, accountKeyOf, type InputRecordJson } from "../../schemas/index.ts";

/**
 * A deterministic generator of realistic usage for both levels: creators who build apps (platform
 * usage), apps with end users who chat (app usage, three agents a record), trials that run out, top-ups,
 * sessions that start, pause, resume and finish. The same options always give the same records, so the
 * demo, the tests and the benchmarks can compare against the billing core computed from the same list.
 */
export interface WorkloadOptions {
  seed: number;
  /** How many records to generate in all (usage, credits and session records together). */
  records: number;
  apps: number;
  usersPerApp: number;
  /** Share of records that are a creator's own platform usage. */
  platformShare: number;
  /** Share of records that are top-ups. */
  topUpShare: number;
  /** Event time of the first record, and the gap between records. */
  startAt: string;
  stepMs: number;
  /** Prefix of every record_id, so two workloads never share ids. */
  runId: string;
  /** Prefix of app and creator ids (lower-case), so a run can bill accounts of its own. */
  idPrefix: string;
  /**
   * What the generator assumes an account starts with, to behave like a runtime that respects budgets:
   * when it has run dry, a chat is paused, the user tops up, and the chat resumes.
   */
  appTrialTokens: number;
  platformAllowanceTokens: number;
}

/**
 * Yesterday at 09:00 UTC: event times must lie near the time records reach Kafka (the processor refuses a
 * record whose occurred_at is too far from its log timestamp, billing.md), so the default workload is
 * dated around now. A fixed `startAt` still gives the same records on every run.
 */
function recentStart(): string {
  const day = 86_400_000;
  return new Date(Math.floor(Date.now() / day) * day - day + 9 * 3_600_000).toISOString();
}

const defaultWorkload: WorkloadOptions = {
  seed: 42,
  records: 1_000,
  apps: 5,
  usersPerApp: 20,
  platformShare: 0.1,
  topUpShare: 0.03,
  startAt: recentStart(),
  stepMs: 250,
  runId: "sim",
  idPrefix: "",
  appTrialTokens: 10_000,
  platformAllowanceTokens: 100_000,
};

/** mulberry32: tiny, fast, and the same sequence on every machine. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const APP_AGENTS = ["PlannerAgent", "CustomerAgent", "ResearchAgent", "WriterAgent", "ReviewerAgent"];
const PLATFORM_AGENTS = ["ConceptAgent", "ArchitectAgent", "CoderAgent", "TesterAgent"];
const MODELS = ["gpt-4o", "gpt-4o-mini", "default"];
const APP_WORKFLOWS = ["chat", "support", "research"];

function enterpriseIdOf(index: number, prefix = ""): string {
  return `${prefix}app-${String(index).padStart(3, "0")}`;
}

/** Two apps per creator. */
function creatorOf(appIndex: number, prefix = ""): string {
  return `${prefix}creator-${String(Math.floor(appIndex / 2)).padStart(3, "0")}`;
}

export function* generateWorkload(options: Partial<WorkloadOptions> = {}): Generator<InputRecordJson> {
  const opts = { ...defaultWorkload, ...options };
  const random = prng(opts.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const startMs = Date.parse(opts.startAt);
  let remaining = opts.records;
  if (remaining <= 0) return;
  const openChats = new Map<AccountKey, { chat: string; session: string; workflow: string; turns: number }>();
  for (const record of steps(opts, random, pick, startMs, openChats)) {
    yield record;
    if (--remaining === 0) return;
  }
}

function* steps(
  opts: WorkloadOptions,
  random: () => number,
  pick: <T>(list: readonly T[]) => T,
  startMs: number,
  openChats: Map<AccountKey, { chat: string; session: string; workflow: string; turns: number }>,
): Generator<InputRecordJson> {
  const balances = new Map<AccountKey, number>();
  const spend = (key: AccountKey, start: number, tokens: number): number => {
    const left = (balances.get(key) ?? start) - tokens;
    balances.set(key, left);
    return left;
  };
  const sum = (agents: Record<string, { prompt_tokens: number; completion_tokens: number }>): number =>
    Object.values(agents).reduce((total, agent) => total + agent.prompt_tokens + agent.completion_tokens, 0);
  for (let i = 0; ; i++) {
    const occurred_at = new Date(startMs + i * opts.stepMs).toISOString();
    const record_id = `${opts.runId}-${i}`;
    const appIndex = Math.floor(random() * opts.apps);
    const enterprise_id = enterpriseIdOf(appIndex, opts.idPrefix);
    const mozaiks_user_id = creatorOf(appIndex, opts.idPrefix);
    const roll = random();

    if (roll < opts.platformShare) {
      const agents: Record<
        string,
        { prompt_tokens: number; completion_tokens: number; response_time_ms: number; message_count: number }
      > = {};
      for (const agent of PLATFORM_AGENTS.slice(0, 2 + Math.floor(random() * 3))) {
        agents[agent] = {
          prompt_tokens: 500 + Math.floor(random() * 4_000),
          completion_tokens: 200 + Math.floor(random() * 3_000),
          response_time_ms: Math.round(400 + random() * 3_000),
          message_count: 1 + Math.floor(random() * 3),
        };
      }
      const creatorKey = accountKeyOf({ level: "platform", mozaiks_user_id });
      if ((balances.get(creatorKey) ?? opts.platformAllowanceTokens) <= 0) {
        const tokens = 500_000;
        spend(creatorKey, opts.platformAllowanceTokens, -tokens);
        const platformIds = { level: "platform" as const, enterprise_id, mozaiks_user_id };
        yield {
          type: "credit",
          schema_version: 1,
          record_id: `${record_id}-topup`,
          kind: "top_up",
          ...platformIds,
          tokens,
          amount_micros: tokens * 10,
          occurred_at,
        };
      }
      spend(creatorKey, opts.platformAllowanceTokens, sum(agents));
      yield {
        type: "usage",
        schema_version: 1,
        record_id,
        level: "platform",
        enterprise_id,
        mozaiks_user_id,
        user_id: mozaiks_user_id,
        workflow_type: "app_generation",
        workflow_name: "Generator",
        session_id: `${opts.runId}-gen-${appIndex}`,
        chat_id: `${opts.runId}-gen-${appIndex}`,
        model: pick(MODELS),
        agent_usage: agents,
        occurred_at,
      };
      continue;
    }

    const platform_user_id = `user-${String(Math.floor(random() * opts.usersPerApp)).padStart(4, "0")}`;
    const ids = { level: "app_usage" as const, enterprise_id, mozaiks_user_id, platform_user_id };
    const userKey = accountKeyOf(ids);
    if (roll < opts.platformShare + opts.topUpShare) {
      const tokens = 5_000 * (1 + Math.floor(random() * 4));
      spend(userKey, opts.appTrialTokens, -tokens);
      yield {
        type: "credit",
        schema_version: 1,
        record_id,
        kind: "top_up",
        ...ids,
        tokens,
        amount_micros: tokens * 20,
        occurred_at,
      };
      continue;
    }

    let chat = openChats.get(userKey);
    if (chat === undefined) {
      chat = {
        chat: `${opts.runId}-chat-${i}`,
        session: `${opts.runId}-sess-${i}`,
        workflow: pick(APP_WORKFLOWS),
        turns: 0,
      };
      openChats.set(userKey, chat);
      yield {
        type: "session",
        schema_version: 1,
        record_id: `${record_id}-start`,
        event: "start",
        ...ids,
        session_id: chat.session,
        chat_id: chat.chat,
        workflow_name: chat.workflow,
        occurred_at,
      };
    }
    chat.turns++;
    const agents: Record<
      string,
      { prompt_tokens: number; completion_tokens: number; response_time_ms: number; message_count: number }
    > = {};
    const first = Math.floor(random() * (APP_AGENTS.length - 2));
    for (const agent of APP_AGENTS.slice(first, first + 3)) {
      agents[agent] = {
        prompt_tokens: 50 + Math.floor(random() * 400),
        completion_tokens: 20 + Math.floor(random() * 300),
        response_time_ms: Math.round(150 + random() * 2_500),
        message_count: 1,
      };
    }
    if ((balances.get(userKey) ?? opts.appTrialTokens) <= 0) {
      // The runtime saw canContinue() turn false: pause, the user buys tokens, the chat resumes.
      const chatIds = { ...ids, session_id: chat.session, chat_id: chat.chat, workflow_name: chat.workflow };
      yield {
        type: "session",
        schema_version: 1,
        record_id: `${record_id}-pause`,
        event: "pause",
        ...chatIds,
        pause_reason: "insufficient_tokens",
        occurred_at,
      };
      const tokens = 20_000;
      spend(userKey, opts.appTrialTokens, -tokens);
      yield {
        type: "credit",
        schema_version: 1,
        record_id: `${record_id}-topup`,
        kind: "top_up",
        ...ids,
        tokens,
        amount_micros: tokens * 20,
        occurred_at,
      };
      yield {
        type: "session",
        schema_version: 1,
        record_id: `${record_id}-resume`,
        event: "resume",
        ...chatIds,
        occurred_at,
      };
    }
    spend(userKey, opts.appTrialTokens, sum(agents));
    yield {
      type: "usage",
      schema_version: 1,
      record_id,
      ...ids,
      user_id: platform_user_id,
      workflow_type: "chat_interaction",
      workflow_name: chat.workflow,
      session_id: chat.session,
      chat_id: chat.chat,
      model: pick(MODELS),
      agent_usage: agents,
      occurred_at,
      connection_state: "active",
    };
    if (chat.turns >= 4 + Math.floor(random() * 8)) {
      openChats.delete(userKey);
      yield {
        type: "session",
        schema_version: 1,
        record_id: `${record_id}-end`,
        event: "finalize",
        ...ids,
        session_id: chat.session,
        chat_id: chat.chat,
        workflow_name: chat.workflow,
        occurred_at,
      };
    }
  }
}
