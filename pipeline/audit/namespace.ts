import { AgentmeterError } from "../../schemas/errors.ts";
import {
  appIdNaming,
  appPrefixesOverlap,
  type Config,
  MONGODB_DB_NAME_MAX_BYTES,
  maxEnterpriseIdLength,
} from "../config.ts";
import type { AuditNamespace } from "./report.ts";

/** Lower-case letters and digits: valid in every name it is appended to (topic, database, identifier). */
const SUFFIX_RULE = /^[a-z0-9]{1,12}$/;

/**
 * A replay's app databases are `R_{suffix}_{enterprise_id}`: a prefix of their own, not the live one's.
 * MongoDB compares database names ignoring case, so the old `{prefix}R{suffix}_{id}` was the live app
 * `r{suffix}_{id}`'s name; and with the live prefix inside, a 48-character id went past 63 bytes.
 * `R_` + 12 + `_` is 15 bytes, so every enterprise id the live namespace holds fits here too.
 */
function replayAppDbPrefix(suffix: string): string {
  return `R_${suffix}_`;
}

/**
 * The configuration of a replay namespace: the same input topic, everything written goes elsewhere.
 * Output topics get a suffix too, so a replay never emits budget events or dead letters to live consumers.
 * Fails up front (CLI_USAGE) when a database name could pass 63 bytes or could be a live database's
 * (ignoring case); the replay accepts exactly the enterprise ids the live namespace accepts.
 */
export function suffixedConfig(config: Config, suffix: string): Config {
  if (!SUFFIX_RULE.test(suffix)) {
    throw new AgentmeterError("CLI_USAGE", `--suffix '${suffix}' must be 1-12 lower-case letters or digits`);
  }
  const maxId = maxEnterpriseIdLength(config);
  const named: Config = {
    ...config,
    AGENTMETER_GROUP_ID: `${config.AGENTMETER_GROUP_ID}.replay.${suffix}`,
    AGENTMETER_DLQ_TOPIC: `${config.AGENTMETER_DLQ_TOPIC}.replay.${suffix}`,
    AGENTMETER_EVENTS_TOPIC: `${config.AGENTMETER_EVENTS_TOPIC}.replay.${suffix}`,
    AGENTMETER_STATE_TOPIC: `${config.AGENTMETER_STATE_TOPIC}.replay.${suffix}`,
    AGENTMETER_HOLDS_TOPIC: `${config.AGENTMETER_HOLDS_TOPIC}.replay.${suffix}`,
    AGENTMETER_PLATFORM_DB: `${config.AGENTMETER_PLATFORM_DB}_${suffix}`,
    AGENTMETER_APP_DB_PREFIX: replayAppDbPrefix(suffix),
    // The live namespace's bound, not the replay prefix's: the replay must decide like the live run.
    AGENTMETER_MAX_ENTERPRISE_ID_LENGTH: maxId,
    AGENTMETER_WORKFLOW_DB: `${config.AGENTMETER_WORKFLOW_DB}_${suffix}`,
    CLICKHOUSE_DATABASE: `${config.CLICKHOUSE_DATABASE}_${suffix}`,
  };
  const problem = namespaceProblem(config, named);
  if (problem !== undefined) throw new AgentmeterError("CLI_USAGE", `--suffix ${suffix}: ${problem}`);
  return named;
}

type DbNames = Pick<
  Config,
  | "AGENTMETER_PLATFORM_DB"
  | "AGENTMETER_WORKFLOW_DB"
  | "AGENTMETER_APP_DB_PREFIX"
  | "AGENTMETER_MAX_ENTERPRISE_ID_LENGTH"
>;

/**
 * Why the replay namespace's MongoDB databases cannot be used beside the live one, or undefined: a name
 * over MongoDB's 63 bytes, or two names (fixed, or an app's for any valid enterprise id) that are equal
 * ignoring case, within the replay or across replay and live.
 */
export function namespaceProblem(live: DbNames, replay: DbNames): string | undefined {
  const maxId = maxEnterpriseIdLength(live);
  const fixed = (names: DbNames) => [names.AGENTMETER_PLATFORM_DB, names.AGENTMETER_WORKFLOW_DB];
  for (const name of fixed(replay)) {
    if (Buffer.byteLength(name, "utf8") > MONGODB_DB_NAME_MAX_BYTES)
      return `database name ${name} is over MongoDB's ${MONGODB_DB_NAME_MAX_BYTES} bytes`;
  }
  const appBytes = Buffer.byteLength(replay.AGENTMETER_APP_DB_PREFIX, "utf8") + maxId;
  if (appBytes > MONGODB_DB_NAME_MAX_BYTES)
    return `app database names ${replay.AGENTMETER_APP_DB_PREFIX}{enterprise_id} reach ${appBytes} bytes with enterprise ids of ${maxId} characters, over MongoDB's ${MONGODB_DB_NAME_MAX_BYTES}`;
  const names = [...fixed(live), ...fixed(replay)];
  for (const [i, a] of names.entries()) {
    for (const b of names.slice(i + 1)) {
      if (a !== b && a.toLowerCase() === b.toLowerCase())
        return `databases ${a} and ${b} differ only by case`;
    }
  }
  for (const name of fixed(replay)) {
    if (fixed(live).some((other) => other.toLowerCase() === name.toLowerCase()))
      return `database ${name} is a live database`;
  }
  for (const [prefix, owner] of [
    [live.AGENTMETER_APP_DB_PREFIX, "a live app"],
    [replay.AGENTMETER_APP_DB_PREFIX, "a replayed app"],
  ] as const) {
    for (const name of names) {
      const id = appIdNaming(prefix, maxId, name);
      if (id !== undefined) return `database ${name} is also ${owner}'s (${prefix}${id}, ignoring case)`;
    }
  }
  if (appPrefixesOverlap(live.AGENTMETER_APP_DB_PREFIX, maxId, replay.AGENTMETER_APP_DB_PREFIX, maxId))
    return `app databases ${replay.AGENTMETER_APP_DB_PREFIX}{id} can have the name of live app databases ${live.AGENTMETER_APP_DB_PREFIX}{id} (ignoring case)`;
  return undefined;
}

/** The store names an audit read (the report names them, so two namespaces' reports cannot be confused). */
export function auditNamespaceOf(config: Config): AuditNamespace {
  return {
    mongodb_platform_db: config.AGENTMETER_PLATFORM_DB,
    mongodb_app_db_prefix: config.AGENTMETER_APP_DB_PREFIX,
    clickhouse_database: config.CLICKHOUSE_DATABASE,
  };
}
