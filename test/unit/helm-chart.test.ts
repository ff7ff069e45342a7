/**
 * The Helm chart (deploy/helm/agentmeter) against what the processor reads: every environment variable
 * the chart sets is a key of ConfigSchema, the defaults it ships pass loadConfig, and the probes, port
 * and command match the health server and the image. Text checks on the chart's files always run; when a
 * helm binary is at hand (HELM_BIN, ~/.cache/agentmeter/go/bin/helm, or `helm` on the PATH) the same
 * checks run on `helm template` output too, with lint and the chart's refusals.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigSchema, loadConfig } from "../../pipeline/config.ts";
import { HEALTH_PATHS } from "../../pipeline/ops/health-server.ts";
import { requireTool, skipWithout } from "../support/tools.ts";

const root = new URL("../../", import.meta.url).pathname;
const chart = join(root, "deploy/helm/agentmeter");
const read = (path: string) => readFileSync(join(chart, path), "utf8");
const configKeys = new Set(Object.keys(ConfigSchema.shape));
const templates = readdirSync(join(chart, "templates")).map((name) => ({
  name,
  text: read(join("templates", name)),
}));
const values = read("values.yaml");

/** UPPER_SNAKE tokens: what an environment variable name looks like. */
function envLikeNames(text: string): string[] {
  return [...new Set([...text.matchAll(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g)].map((match) => match[0]))];
}

/** The lines of a top-level block of values.yaml (`name:` at column 0 up to the next top-level key). */
function valuesBlock(name: string): string[] {
  const lines = values.split("\n");
  const start = lines.indexOf(`${name}:`);
  assert.ok(start >= 0, `values.yaml has ${name}:`);
  const block: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^[A-Za-z]/.test(line)) break;
    block.push(line);
  }
  return block;
}

/** `KEY: "value"` entries of the `config:` block (the values are quoted strings, so JSON). */
function configDefaults(): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const line of valuesBlock("config")) {
    const match = /^ {2}([A-Z][A-Z0-9_]*): (".*")\s*$/.exec(line);
    if (match) entries[match[1]!] = JSON.parse(match[2]!) as string;
  }
  return entries;
}

function helmBinary(): string | undefined {
  const candidates = [
    process.env.HELM_BIN,
    join(homedir(), ".cache/agentmeter/go/bin/helm"),
    ...(process.env.PATH ?? "").split(":").map((dir) => join(dir, "helm")),
  ];
  return candidates.find((path) => path !== undefined && path !== "" && existsSync(path));
}

describe("helm chart: text checks", () => {
  it("every environment variable name in the templates and values is a key of ConfigSchema", () => {
    const unknown: string[] = [];
    for (const { name, text } of [...templates, { name: "values.yaml", text: values }])
      for (const env of envLikeNames(text)) if (!configKeys.has(env)) unknown.push(`${name}: ${env}`);
    assert.deepEqual(unknown, []);
  });

  it("the config block's keys, commented ones included, are ConfigSchema keys, and its defaults load", () => {
    const block = valuesBlock("config");
    const active = block
      .map((line) => /^ {2}([A-Z][A-Z0-9_]*): "/.exec(line)?.[1])
      .filter((key) => key !== undefined);
    const commented = block
      .map((line) => /^ {2}# ([A-Z][A-Z0-9_]*): "/.exec(line)?.[1])
      .filter((key) => key !== undefined);
    assert.ok(active.length >= 10, `found ${active.length} keys`);
    assert.deepEqual(commented, ["KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME"]);
    for (const key of [...active, ...commented]) assert.ok(configKeys.has(key), key);
    const defaults = configDefaults();
    assert.deepEqual(Object.keys(defaults), active);
    const config = loadConfig({
      ...defaults,
      AGENTMETER_METRICS_PORT: "9464",
      AGENTMETER_METRICS_HOST: "0.0.0.0",
    });
    assert.equal(config.AGENTMETER_PARTITIONS, Number(defaults.AGENTMETER_PARTITIONS));
  });

  it("the credentials come from the Secret, never from the ConfigMap", () => {
    const helpers = templates.find((t) => t.name === "_helpers.tpl")!.text;
    const secretKeys = /define "agentmeter\.secretKeys" -}}\n\{\{- list ((?:"[A-Z_]+" ?)+)/.exec(
      helpers,
    )?.[1];
    assert.ok(secretKeys, "agentmeter.secretKeys lists the keys");
    const keys = [...secretKeys.matchAll(/"([A-Z_]+)"/g)].map((match) => match[1]);
    assert.deepEqual(keys, [
      "MONGODB_URI",
      "CLICKHOUSE_PASSWORD",
      "KAFKA_SASL_PASSWORD",
      "AGENTMETER_OPERATOR_SECRET",
    ]);
    for (const key of keys) assert.ok(configKeys.has(key!), key);
    const defaults = configDefaults();
    for (const key of keys) assert.equal(defaults[key!], undefined, `${key} not in config`);
    const deployment = templates.find((t) => t.name === "deployment.yaml")!.text;
    assert.match(
      deployment,
      /secretKeyRef:\n\s+name: \{\{ \$secretName \}\}\n\s+key: \{\{ \$key \}\}\n\s+optional: true/,
    );
  });

  it("the probes use the health server's paths on the metrics port, whose default is the config's", () => {
    const deployment = templates.find((t) => t.name === "deployment.yaml")!.text;
    const probe = (kind: string) =>
      new RegExp(`${kind}:\\n\\s+httpGet:\\n\\s+path: (\\S+)\\n\\s+port: (\\S+)`).exec(deployment);
    assert.deepEqual(probe("livenessProbe")?.slice(1), [HEALTH_PATHS.liveness, "metrics"]);
    assert.deepEqual(probe("readinessProbe")?.slice(1), [HEALTH_PATHS.readiness, "metrics"]);
    assert.match(deployment, /- name: metrics\n\s+containerPort: \{\{ \.Values\.metrics\.port \}\}/);
    const port = Number(/^metrics:\n(?:\s+#.*\n)*\s+port: (\d+)$/m.exec(values)?.[1]);
    assert.equal(port, ConfigSchema.shape.AGENTMETER_METRICS_PORT.parse(undefined));
    const configmap = templates.find((t) => t.name === "configmap.yaml")!.text;
    assert.match(
      configmap,
      /AGENTMETER_METRICS_PORT: \{\{ \.Values\.metrics\.port \| toString \| quote \}\}/,
    );
    const monitor = templates.find((t) => t.name === "servicemonitor.yaml")!.text;
    assert.match(monitor, new RegExp(`- port: metrics\\n\\s+path: ${HEALTH_PATHS.metrics}\\n`));
  });

  it("the command is the image's exec-form CMD, and the grace period outlasts the 75 s stop", () => {
    const dockerfile = readFileSync(join(root, "deploy/docker/Dockerfile"), "utf8");
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    const command = JSON.parse(/^command: (\[.*\])$/m.exec(values)![1]!) as string[];
    assert.deepEqual(command, cmd);
    assert.deepEqual(command, ["node", "--import", "tsx", "pipeline/processor/main.ts"]);
    // A stopping processor is done within 75 s: drain (30 s), abandoned publishes, leaving the group.
    assert.ok(Number(/^terminationGracePeriodSeconds: (\d+)$/m.exec(values)![1]) > 75);
  });
});

/**
 * A helm built with `go install` (scripts/ci-tools.sh) lacks the release build's flags and assumes
 * Kubernetes 1.20, below the chart's floor: render for a cluster the chart supports.
 */
const KUBE_VERSION = ["--kube-version", "1.30.0"];

describe("helm chart: rendered by helm", () => {
  const found = helmBinary();
  const why =
    "no helm binary (HELM_BIN, ~/.cache/agentmeter/go/bin/helm, PATH; scripts/ci-tools.sh builds it)";
  const skip = skipWithout(found, why);
  const helm = () => requireTool(found, why);

  const render = (...args: string[]) =>
    execFileSync(helm(), ["template", "am", chart, "--namespace", "billing", ...KUBE_VERSION, ...args], {
      encoding: "utf8",
    });

  it("helm lint passes", { skip }, () => {
    const lint = spawnSync(helm(), ["lint", "--strict", chart], { encoding: "utf8" });
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
  });

  it("renders env names, ConfigMap keys and probes that match the processor", { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), "agentmeter-helm-"));
    try {
      const extra = join(dir, "values.yaml");
      writeFileSync(
        extra,
        [
          "secret:",
          "  existingSecret: agentmeter-credentials",
          "billingConfig:",
          "  platform_allowance_tokens: 200000",
          "kafkaCa:",
          "  existingSecret: kafka-ca",
          "metrics:",
          '  host: "::"',
          "  serviceMonitor:",
          "    enabled: true",
          "",
        ].join("\n"),
      );
      const text = render("-f", extra);
      const envNames = [...text.matchAll(/^\s+- name: ([A-Z][A-Z0-9_]*)$/gm)].map((match) => match[1]!);
      assert.deepEqual(envNames, [
        "MONGODB_URI",
        "CLICKHOUSE_PASSWORD",
        "KAFKA_SASL_PASSWORD",
        "AGENTMETER_OPERATOR_SECRET",
      ]);
      const configMap =
        /kind: ConfigMap\nmetadata:\n\s+name: am-agentmeter\n[\s\S]*?\ndata:\n((?: {2}.*\n)+)/.exec(text);
      assert.ok(configMap, "the processor's ConfigMap");
      const data: Record<string, string> = {};
      for (const line of configMap[1]!.trimEnd().split("\n")) {
        const match = /^ {2}([A-Z][A-Z0-9_]*): (".*")$/.exec(line);
        assert.ok(match, line);
        data[match[1]!] = JSON.parse(match[2]!) as string;
      }
      for (const key of [...Object.keys(data), ...envNames]) assert.ok(configKeys.has(key), key);
      assert.equal(data.AGENTMETER_METRICS_PORT, "9464");
      // An IPv6-only cluster's kubelet probes the pod's IPv6 address: the host is the chart user's.
      assert.equal(data.AGENTMETER_METRICS_HOST, "::");
      assert.equal(data.AGENTMETER_BILLING_CONFIG, "/etc/agentmeter/billing/billing.json");
      assert.equal(data.KAFKA_SSL_CA_FILE, "/etc/agentmeter/kafka-ca/ca.crt");
      // KAFKA_SSL_CA_FILE needs KAFKA_SSL=true: with it, what the chart renders loads.
      loadConfig({ ...data, KAFKA_SSL: "true" });
      assert.match(text, /mountPath: \/etc\/agentmeter\/billing\n/);
      assert.match(text, /"platform_allowance_tokens": 200000/);
      for (const [probe, path] of [
        ["livenessProbe", HEALTH_PATHS.liveness],
        ["readinessProbe", HEALTH_PATHS.readiness],
      ] as const)
        assert.match(text, new RegExp(`${probe}:\\n\\s+httpGet:\\n\\s+path: ${path}\\n\\s+port: metrics\\n`));
      assert.match(text, /- name: metrics\n\s+containerPort: 9464\n/);
      assert.match(text, /terminationGracePeriodSeconds: 90\n/);
      assert.match(text, /kind: PodDisruptionBudget/);
      assert.match(text, /kind: ServiceMonitor[\s\S]*path: \/metrics\n/);
      assert.match(text, /command:\n\s+- node\n\s+- --import\n\s+- tsx\n\s+- pipeline\/processor\/main.ts\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("with no Secret configured, renders no secret env; with secret.values, its own Secret", { skip }, () => {
    const plain = render();
    assert.doesNotMatch(plain, /secretKeyRef/);
    assert.doesNotMatch(plain, /kind: Secret\n/);
    const own = render("--set", "secret.values.CLICKHOUSE_PASSWORD=pw");
    assert.match(own, /kind: Secret\n[\s\S]*stringData:\n\s+CLICKHOUSE_PASSWORD: "pw"\n/);
    assert.match(own, /secretKeyRef:\n\s+name: am-agentmeter\n\s+key: CLICKHOUSE_PASSWORD/);
  });

  it("refuses replicas beyond the partitions, a grace period of 75 s or less, credentials in config", {
    skip,
  }, () => {
    const refused = (args: string[], message: RegExp) => {
      const result = spawnSync(helm(), ["template", "am", chart, ...KUBE_VERSION, ...args], {
        encoding: "utf8",
      });
      assert.notEqual(result.status, 0, args.join(" "));
      assert.match(result.stderr, message);
    };
    refused(["--set", "replicaCount=7"], /replicaCount 7 is more than config.AGENTMETER_PARTITIONS 6/);
    refused(
      ["--set", "terminationGracePeriodSeconds=75"],
      /terminationGracePeriodSeconds must be more than 75/,
    );
    assert.match(render("--set", "terminationGracePeriodSeconds=76"), /terminationGracePeriodSeconds: 76\n/);
    refused(["--set", "config.MONGODB_URI=mongodb://x/"], /config.MONGODB_URI is a credential/);
    refused(
      ["--set", "config.AGENTMETER_METRICS_PORT=1"],
      /config.AGENTMETER_METRICS_PORT is set by the chart/,
    );
    refused(["--set", "secret.values.OTHER=1"], /secret.values.OTHER is not a credential/);
  });
});
