import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import {
  accountResponseSchema,
  apiErrorSchema,
  appAccountParamsSchema,
  appParamsSchema,
  appTopAgentsResponseSchema,
  creatorAppsResponseSchema,
  creatorParamsSchema,
  creatorTopAgentsResponseSchema,
  pausedChatsResponseSchema,
  platformAccountParamsSchema,
  statementParamsSchema,
  statementQuerySchema,
  statementResponseSchema,
  topAgentsQuerySchema,
  usageQuerySchema,
  usageResponseSchema,
} from "../../../schemas/api.ts";
import { callerOf, creatorScopeOf, guard, requireCreator } from "../auth.ts";
import type { BudgetStates } from "../budgets.ts";
import type { ApiKey } from "../keys.ts";
import type { AppOwners } from "../ownership.ts";
import { notFound } from "../problem.ts";
import { accountView } from "../reads/account.ts";
import { topAgents } from "../reads/agents.ts";
import { creatorApps } from "../reads/creator-apps.ts";
import { pausedChats } from "../reads/paused-chats.ts";
import { creatorStatement } from "../reads/statement.ts";
import { statementCsv } from "../reads/statement-csv.ts";
import { appUsage } from "../reads/usage.ts";
import type { ReadStores } from "../stores.ts";

export interface ReadRouteOptions {
  keys: readonly ApiKey[];
  stores: ReadStores;
  /** Which creator an app belongs to (the billing config's pins, then the Enterprises projection). */
  owners: AppOwners;
  /** The budget-state topic's view. */
  budgets: BudgetStates;
}

const errors = { "4xx": apiErrorSchema, "5xx": apiErrorSchema };
const security = [{ apiKey: [] }];

/**
 * The read routes. Each checks, before it reads anything else, that the key may see the creator the
 * resource belongs to; an app's creator is the one ownership.ts names (pinned in the billing config,
 * else the Enterprises projection's).
 */
export const readRoutes: FastifyPluginAsyncZod<ReadRouteOptions> = async (
  app,
  { keys, stores, owners, budgets },
) => {
  const read = guard(keys, "read");
  const ownerOfApp = async (key: ApiKey, enterpriseId: string) =>
    requireCreator(key, await owners.creatorOf(enterpriseId), `app ${enterpriseId}`);

  app.get(
    "/v1/accounts/platform/:mozaiks_user_id",
    {
      onRequest: read,
      schema: {
        summary: "A creator's platform account: balances, money and budget state",
        tags: ["accounts"],
        security,
        params: platformAccountParamsSchema,
        response: { 200: accountResponseSchema, ...errors },
      },
    },
    async (request) => {
      const key = callerOf(request);
      const { mozaiks_user_id } = request.params;
      const what = `account platform:${mozaiks_user_id}`;
      requireCreator(key, mozaiks_user_id, what);
      const account = await accountView(stores.layout, budgets, {
        level: "platform",
        enterprise_id: "",
        mozaiks_user_id,
      });
      if (account === null) throw notFound(what);
      return account;
    },
  );

  app.get(
    "/v1/accounts/app_usage/:enterprise_id/:platform_user_id",
    {
      onRequest: read,
      schema: {
        summary: "An app end user's account: balances, money and budget state",
        tags: ["accounts"],
        security,
        params: appAccountParamsSchema,
        response: { 200: accountResponseSchema, ...errors },
      },
    },
    async (request) => {
      const key = callerOf(request);
      const { enterprise_id, platform_user_id } = request.params;
      const what = `account app:${enterprise_id}:${platform_user_id}`;
      requireCreator(key, await owners.creatorOf(enterprise_id), what);
      const account = await accountView(stores.layout, budgets, {
        level: "app_usage",
        enterprise_id,
        mozaiks_user_id: "",
        platform_user_id,
      });
      if (account === null) throw notFound(what);
      // The account's own creator (bound by its first record) must be the caller's too: for an app
      // without a pinned creator it may differ from the app's.
      requireCreator(key, account.mozaiks_user_id, what);
      return account;
    },
  );

  app.get(
    "/v1/apps/:enterprise_id/usage",
    {
      onRequest: read,
      schema: {
        summary: "An app's usage and earnings over [from, to), by window, optionally grouped",
        tags: ["apps"],
        security,
        params: appParamsSchema,
        querystring: usageQuerySchema,
        response: { 200: usageResponseSchema, ...errors },
      },
    },
    async (request) => {
      const key = callerOf(request);
      await ownerOfApp(key, request.params.enterprise_id);
      return appUsage(
        stores.clickhouse,
        stores.database,
        request.params.enterprise_id,
        request.query,
        creatorScopeOf(key),
      );
    },
  );

  app.get(
    "/v1/apps/:enterprise_id/agents/top",
    {
      onRequest: read,
      schema: {
        summary:
          "An app's top agents over [from, to) by attributed cost, billed amount, tokens or response time",
        tags: ["apps"],
        security,
        params: appParamsSchema,
        querystring: topAgentsQuerySchema,
        response: { 200: appTopAgentsResponseSchema, ...errors },
      },
    },
    async (request) => {
      const key = callerOf(request);
      const { enterprise_id } = request.params;
      await ownerOfApp(key, enterprise_id);
      const { from, to, level, by } = request.query;
      const agents = await topAgents(
        stores.clickhouse,
        stores.database,
        { enterprise_id, creator: creatorScopeOf(key) },
        request.query,
      );
      return { enterprise_id, from, to, level, by, agents };
    },
  );

  app.get(
    "/v1/apps/:enterprise_id/paused-chats",
    {
      onRequest: read,
      schema: {
        summary: "The app's end users' chats that are paused now",
        tags: ["apps"],
        security,
        params: appParamsSchema,
        response: { 200: pausedChatsResponseSchema, ...errors },
      },
    },
    async (request) => {
      const key = callerOf(request);
      await ownerOfApp(key, request.params.enterprise_id);
      return pausedChats(stores.layout, request.params.enterprise_id, creatorScopeOf(key));
    },
  );

  app.get(
    "/v1/creators/:mozaiks_user_id/apps",
    {
      onRequest: read,
      schema: {
        summary: "A creator's apps with their end users' lifetime totals",
        tags: ["creators"],
        security,
        params: creatorParamsSchema,
        response: { 200: creatorAppsResponseSchema, ...errors },
      },
    },
    async (request) => {
      const key = callerOf(request);
      requireCreator(key, request.params.mozaiks_user_id, `creator ${request.params.mozaiks_user_id}`);
      return creatorApps(stores, owners, request.params.mozaiks_user_id);
    },
  );

  app.get(
    "/v1/creators/:mozaiks_user_id/agents/top",
    {
      onRequest: read,
      schema: {
        summary:
          "A creator's top agents over [from, to), over the records naming the creator (as statements count them)",
        tags: ["creators"],
        security,
        params: creatorParamsSchema,
        querystring: topAgentsQuerySchema,
        response: { 200: creatorTopAgentsResponseSchema, ...errors },
      },
    },
    async (request) => {
      const key = callerOf(request);
      const { mozaiks_user_id } = request.params;
      requireCreator(key, mozaiks_user_id, `creator ${mozaiks_user_id}`);
      const { from, to, level, by } = request.query;
      const agents = await topAgents(stores.clickhouse, stores.database, { mozaiks_user_id }, request.query);
      return { mozaiks_user_id, from, to, level, by, agents };
    },
  );

  app.get(
    "/v1/creators/:mozaiks_user_id/statements/:month",
    {
      onRequest: read,
      schema: {
        summary: "A creator's payout statement for a month (UTC, by event time), JSON or CSV (?format=csv)",
        tags: ["creators"],
        security,
        params: statementParamsSchema,
        querystring: statementQuerySchema,
        response: { 200: statementResponseSchema, ...errors },
      },
    },
    async (request, reply) => {
      const key = callerOf(request);
      const { mozaiks_user_id, month } = request.params;
      requireCreator(key, mozaiks_user_id, `creator ${mozaiks_user_id}`);
      const statement = await creatorStatement(stores, owners, mozaiks_user_id, month);
      if (request.query.format === "csv") {
        return reply
          .type("text/csv; charset=utf-8")
          .header("content-disposition", `attachment; filename="statement-${mozaiks_user_id}-${month}.csv"`)
          .serializer((payload: unknown) => payload as string)
          .send(statementCsv(statement) as never);
      }
      return statement;
    },
  );
};
