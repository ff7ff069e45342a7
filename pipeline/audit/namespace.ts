import type { Config } from "../config.ts";
import { AgentmeterError } from "../errors.ts";
import type { AuditNamespace } from "./report.ts";

/** Lower-case letters and digits: valid in every name it is appended to (topic, database, identifier). */
export const SUFFIX_RULE = /^[a-z0-9]{1,12}$/;

/**
 * The configuration of a replay namespace: the same input topic, everything written goes elsewhere.
 * App databases are `{prefix}R{suffix}_{enterprise_id}`: the upper-case R can never begin an
 * enterprise id, so a replay's databases are never mistaken for live apps (nor the reverse).
 * Output topics get a suffix too, so a replay never emits budget events or dead letters to live consumers.
 */
export function suffixedConfig(config: Config, suffix: string): Config {
  if (!SUFFIX_RULE.test(suffix)) {
    throw new AgentmeterError("CLI_USAGE", `--suffix '${suffix}' must be 1-12 lower-case letters or digits`);
  }
  const named: Config = {
    ...config,
    AGENTMETER_GROUP_ID: `${config.AGENTMETER_GROUP_ID}.replay.${suffix}`,
    AGENTMETER_DLQ_TOPIC: `${config.AGENTMETER_DLQ_TOPIC}.replay.${suffix}`,
    AGENTMETER_EVENTS_TOPIC: `${config.AGENTMETER_EVENTS_TOPIC}.replay.${suffix}`,
    AGENTMETER_STATE_TOPIC: `${config.AGENTMETER_STATE_TOPIC}.replay.${suffix}`,
    AGENTMETER_PLATFORM_DB: `${config.AGENTMETER_PLATFORM_DB}_${suffix}`,
    AGENTMETER_APP_DB_PREFIX: `${config.AGENTMETER_APP_DB_PREFIX}R${suffix}_`,
    AGENTMETER_WORKFLOW_DB: `${config.AGENTMETER_WORKFLOW_DB}_${suffix}`,
    CLICKHOUSE_DATABASE: `${config.CLICKHOUSE_DATABASE}_${suffix}`,
  };
  // MongoDB database names stop at 63 bytes; an app name adds up to 48 more to the prefix.
  for (const name of [named.AGENTMETER_PLATFORM_DB, named.AGENTMETER_WORKFLOW_DB]) {
    if (name.length > 63)
      throw new AgentmeterError("CLI_USAGE", `--suffix makes database name ${name} too long`);
  }
  return named;
}

export function namespaceOf(config: Config): AuditNamespace {
  return {
    mongodb_platform_db: config.AGENTMETER_PLATFORM_DB,
    mongodb_app_db_prefix: config.AGENTMETER_APP_DB_PREFIX,
    clickhouse_database: config.CLICKHOUSE_DATABASE,
  };
}
