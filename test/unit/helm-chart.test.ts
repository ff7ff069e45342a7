/**
 * The Helm chart (deploy/helm/agentmeter) against what the processor and the API read: every environment
 * variable the chart sets is a key of ConfigSchema (or, for the API, of ServeConfigSchema), the defaults
 * it ships pass loadConfig, and the probes, port and command match the health server and the image.
 * Text checks on the chart's files always run; when a helm binary is at hand (HELM_BIN,
 * ~/.cache/agentmeter/go/bin/helm, or `helm` on the PATH) the same checks run on `helm template` output
 * too, with lint and the chart's refusals.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ServeConfigSchema } from "../../pipeline/api/config.ts";
import { ConfigSchema, loadConfig } from "../../pipeline/config.ts";
import { HEALTH_PATHS } from "../../pipeline/ops/health-server.ts";
import { requireTool, skipWithout } from "../support/tools.ts";

const root = new URL("../../", import.meta.url).pathname;
const chart = join(root, "deploy/helm/agentmeter");
const read = (path: string) => readFileSync(join(chart, path), "utf8");
const configKeys = new Set(Object.keys(ConfigSchema.shape));
/** The API's own variables (`agentmeter serve`): it reads these and the pipeline's. */
const serveKeys = new Set(Object.keys(ServeConfigSchema.shape));
const readKeys = new Set([...configKeys, ...serveKeys]);
/** What the chart sets from api.host, api.port and a Secret rather than from api.config. */
const API_CHART_SET = ["AGENTMETER_API_HOST", "AGENTMETER_API_PORT", "AGENTMETER_API_KEYS"];
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
function configDefaults(block = valuesBlock("config"), indent = "  "): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const line of block) {
    const match = new RegExp(`^${indent}([A-Z][A-Z0-9_]*): (".*")\\s*$`).exec(line);
    if (match) entries[match[1]!] = JSON.parse(match[2]!) as string;
  }
  return entries;
}

/** The lines of `api.<name>:`'s block (a key at two spaces, up to the next key at two spaces or less). */
function apiBlock(name: string): string[] {
  const api = valuesBlock("api");
  const start = api.indexOf(`  ${name}:`);
  assert.ok(start >= 0, `values.yaml has api.${name}:`);
  const block: string[] = [];
  for (const line of api.slice(start + 1)) {
    if (/^ {0,2}[A-Za-z#]/.test(line)) break;
    block.push(line);
  }
  return block;
}

/** The `helm template` documents rendered from one template file. */
function renderedFrom(text: string, template: string): string[] {
  return text
    .split(/^---\n/m)
    .filter((doc) => doc.startsWith(`# Source: agentmeter/templates/${template}\n`));
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
  it("every environment variable name in the templates and values is a key of ConfigSchema or ServeConfigSchema", () => {
    const unknown: string[] = [];
    for (const { name, text } of [...templates, { name: "values.yaml", text: values }])
      for (const env of envLikeNames(text)) if (!readKeys.has(env)) unknown.push(`${name}: ${env}`);
    assert.deepEqual(unknown, []);
    // The API's names only where the API's settings are.
    const apiNames = (text: string) => envLikeNames(text).filter((env) => !configKeys.has(env));
    assert.deepEqual(apiNames(valuesBlock("config").join("\n")), []);
    for (const name of ["configmap.yaml", "deployment.yaml"])
      assert.deepEqual(apiNames(templates.find((t) => t.name === name)!.text), [], name);
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
    assert.match(
      helpers,
      /secretKeyRef:\n\s+name: \{\{ \$secretName \}\}\n\s+key: \{\{ \$key \}\}\n\s+optional: true/,
    );
    const deployment = templates.find((t) => t.name === "deployment.yaml")!.text;
    assert.match(
      deployment,
      /include "agentmeter\.secretEnv" \(dict "root" \. "keys" \(include "agentmeter\.secretKeys" \. \| fromJsonArray\)\)/,
    );
  });

  it("the API's values: its command is the CLI's serve, its settings are ServeConfigSchema's and load", () => {
    assert.match(values, /^api:\n(?:\s+#.*\n)*\s+enabled: false$/m, "off by default");
    const command = JSON.parse(/^ {2}command: (\[.*\])$/m.exec(values)![1]!) as string[];
    assert.deepEqual(command, ["node", "--import", "tsx", "pipeline/cli/main.ts", "serve"]);
    const cli = readFileSync(join(root, "pipeline/cli/main.ts"), "utf8");
    assert.match(cli, /^\s+serve: serveCommand,$/m, "the CLI names the command serve");
    // api.config: every ServeConfigSchema key but those the chart sets itself, and the helper's list.
    const defaults = configDefaults(apiBlock("config"), "    ");
    const settable = [...serveKeys].filter((key) => !API_CHART_SET.includes(key)).sort();
    assert.deepEqual(Object.keys(defaults).sort(), settable);
    const helpers = templates.find((t) => t.name === "_helpers.tpl")!.text;
    const listed = /define "agentmeter\.apiConfigKeys" -}}\n\{\{- list ((?:"[A-Z_]+" ?)+)/.exec(helpers)?.[1];
    assert.ok(listed, "agentmeter.apiConfigKeys lists the keys");
    assert.deepEqual([...listed.matchAll(/"([A-Z_]+)"/g)].map((match) => match[1]).sort(), settable);
    const port = Number(/^ {2}port: (\d+)$/m.exec(valuesBlock("api").join("\n"))?.[1]);
    const host = JSON.parse(/^ {2}host: (".*")$/m.exec(valuesBlock("api").join("\n"))![1]!) as string;
    assert.equal(port, ServeConfigSchema.shape.AGENTMETER_API_PORT.parse(undefined));
    const serve = ServeConfigSchema.parse({
      ...defaults,
      AGENTMETER_API_HOST: host,
      AGENTMETER_API_PORT: String(port),
    });
    assert.equal(serve.AGENTMETER_API_HOST, "0.0.0.0", "reachable from outside the container");
    const grace = Number(
      /^ {2}terminationGracePeriodSeconds: (\d+)$/m.exec(valuesBlock("api").join("\n"))?.[1],
    );
    assert.ok(grace * 1_000 > serve.AGENTMETER_API_SHUTDOWN_MS, `${grace} s outlasts the shutdown wait`);
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
    // The API's settings are under api, each once.
    refused(["--set", "config.AGENTMETER_API_MAX_BATCH=5"], /config.AGENTMETER_API_MAX_BATCH is the API's/);
    const api = ["--set", "api.enabled=true"];
    refused([...api, "--set", "api.config.AGENTMETER_API_PORT=1"], /api.config.AGENTMETER_API_PORT is not/);
    refused([...api, "--set", "api.config.OTHER=1"], /api.config.OTHER is not/);
    refused([...api, "--set", "api.port=0"], /api.port must be 1-65535/);
    refused(
      [...api, "--set", "api.config.AGENTMETER_API_SHUTDOWN_MS=abc"],
      /api.config.AGENTMETER_API_SHUTDOWN_MS must be a whole number/,
    );
    refused(
      [...api, "--set", "api.podLabels.app\\.kubernetes\\.io/name=agentmeter"],
      /api.podLabels.app.kubernetes.io\/name is set by the chart/,
    );
    refused(
      [...api, "--set", "api.terminationGracePeriodSeconds=15"],
      /api.terminationGracePeriodSeconds must be more than api.config.AGENTMETER_API_SHUTDOWN_MS \(15000 ms\)/,
    );
    assert.match(
      render(...api, "--set", "api.terminationGracePeriodSeconds=16"),
      /terminationGracePeriodSeconds: 16\n/,
    );
  });

  it("with api.enabled and the longest release name or names, the API's name and selector never become the processor's", {
    skip,
  }, () => {
    for (const args of [
      ["--set", `fullnameOverride=${"f".repeat(63)}`],
      ["--set", `nameOverride=${"n".repeat(62)}`],
    ]) {
      const text = render("--set", "api.enabled=true", ...args);
      const named = (kind: string) =>
        [...text.matchAll(new RegExp(`^kind: ${kind}\\nmetadata:\\n  name: (\\S+)`, "gm"))].map((m) => m[1]!);
      const deployments = named("Deployment");
      assert.equal(deployments.length, 2, text);
      assert.notEqual(deployments[0], deployments[1], args.join(" "));
      assert.ok(deployments.every((name) => name.length <= 63));
      const selectors = [...text.matchAll(/matchLabels:\n\s+app\.kubernetes\.io\/name: (\S+)/g)].map(
        (m) => m[1]!,
      );
      assert.equal(new Set(selectors).size, 2, `${args.join(" ")}: ${selectors.join(", ")}`);
    }
  });

  it("without api.enabled, nothing of the API is rendered", { skip }, () => {
    const text = render("--set", "secret.values.AGENTMETER_API_KEYS=ops:00:admin");
    assert.deepEqual(renderedFrom(text, "api-deployment.yaml"), []);
    assert.deepEqual(renderedFrom(text, "api-service.yaml"), []);
    assert.doesNotMatch(text, /agentmeter-api|pipeline\/cli\/main\.ts|AGENTMETER_API_(?!KEYS: "ops)/);
  });

  it("with api.enabled: a Deployment running serve, probed on its port, keys from the Secret", {
    skip,
  }, () => {
    const text = render(
      "--set",
      "api.enabled=true",
      "--set",
      "secret.existingSecret=agentmeter-credentials",
      "--set",
      "billingConfig.platform_allowance_tokens=200000",
      "--set",
      "api.port=8081",
      "--set",
      "api.host=::",
    );
    const [deployment, ...more] = renderedFrom(text, "api-deployment.yaml");
    assert.ok(deployment, "the API's Deployment");
    assert.deepEqual(more, []);
    assert.match(deployment, /^kind: Deployment\nmetadata:\n\s+name: am-agentmeter-api\n/m);
    assert.match(
      deployment,
      /command:\n\s+- node\n\s+- --import\n\s+- tsx\n\s+- pipeline\/cli\/main.ts\n\s+- serve\n/,
    );
    assert.match(deployment, /- name: http\n\s+containerPort: 8081\n/);
    for (const probe of ["livenessProbe", "readinessProbe"])
      assert.match(
        deployment,
        new RegExp(`${probe}:\\n\\s+httpGet:\\n\\s+path: /healthz\\n\\s+port: http\\n`),
      );
    // Every variable it sets is one the API or the pipeline reads, and the plain ones load.
    const env = [...deployment.matchAll(/^\s+- name: ([A-Z][A-Z0-9_]*)$/gm)].map((match) => match[1]!);
    assert.deepEqual(
      env.filter((name) => !readKeys.has(name)),
      [],
    );
    const plain = Object.fromEntries(
      [...deployment.matchAll(/^\s+- name: ([A-Z][A-Z0-9_]*)\n\s+value: (".*")$/gm)].map((match) => [
        match[1]!,
        JSON.parse(match[2]!) as string,
      ]),
    );
    assert.equal(plain.AGENTMETER_API_HOST, "::");
    assert.equal(plain.AGENTMETER_API_PORT, "8081");
    const serve = ServeConfigSchema.parse(plain);
    const grace = Number(/terminationGracePeriodSeconds: (\d+)\n/.exec(deployment)?.[1]);
    assert.ok(
      grace * 1_000 > serve.AGENTMETER_API_SHUTDOWN_MS,
      "the grace period outlasts the shutdown wait",
    );
    // The keys and the credentials from the Secret; the pipeline's variables from the processor's ConfigMap.
    assert.match(
      deployment,
      /- name: AGENTMETER_API_KEYS\n\s+valueFrom:\n\s+secretKeyRef:\n\s+name: agentmeter-credentials\n\s+key: AGENTMETER_API_KEYS\n/,
    );
    for (const key of ["MONGODB_URI", "CLICKHOUSE_PASSWORD", "AGENTMETER_OPERATOR_SECRET"])
      assert.ok(env.includes(key), key);
    assert.match(deployment, /envFrom:\n\s+- configMapRef:\n\s+name: am-agentmeter\n/);
    assert.match(deployment, /mountPath: \/etc\/agentmeter\/billing\n/);
    assert.match(deployment, /mountPath: \/tmp\n/);
    // Its pods carry none of the processor's selector (the processor's Deployment, Service and PDB).
    assert.match(deployment, /matchLabels:\n\s+app.kubernetes.io\/name: agentmeter-api\n/);
    assert.doesNotMatch(deployment, /app.kubernetes.io\/name: agentmeter\n/);
    const [service] = renderedFrom(text, "api-service.yaml");
    assert.ok(service, "the API's Service");
    assert.match(service, /selector:\n\s+app.kubernetes.io\/name: agentmeter-api\n/);
    assert.match(service, /- name: http\n\s+port: 8081\n\s+targetPort: http\n/);
    // The processor gets no API key.
    const [processor] = renderedFrom(text, "deployment.yaml");
    assert.doesNotMatch(processor!, /AGENTMETER_API_/);

    // api.keysSecret: the keys from a Secret of their own.
    const own = render("--set", "api.enabled=true", "--set", "api.keysSecret=api-keys");
    assert.match(own, /- name: AGENTMETER_API_KEYS\n\s+valueFrom:\n\s+secretKeyRef:\n\s+name: api-keys\n/);
    // No Secret at all: no keys (the API answers 401 and says so), and it still renders.
    const none = renderedFrom(render("--set", "api.enabled=true"), "api-deployment.yaml")[0];
    assert.ok(none);
    assert.doesNotMatch(none, /secretKeyRef/);
  });
});
