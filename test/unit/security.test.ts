import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { redactText, redactUrl, shownValue } from "../../pipeline/auth/redact.ts";
import {
  authorizeRecord,
  creditAuthorization,
  SIGNATURE_HEADER,
  signRecord,
  verifyRecordSignature,
} from "../../pipeline/auth/signature.ts";
import { loadConfig } from "../../pipeline/config.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import { kafkaSecurityOptions } from "../../pipeline/kafka.ts";
import { createLogger } from "../../pipeline/log.ts";
import { signatureHeaders } from "../../sdk/producer.ts";

const SECRET = "0123456789abcdef0123456789abcdef";
const VALUE = '{"type":"credit","record_id":"c1","tokens":1000}';

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(isAgentmeterError(error, "CONFIG_INVALID"), String(error));
    return error.message;
  }
  assert.fail(`expected CONFIG_INVALID for ${JSON.stringify(Object.keys(env))}`);
}

describe("operator signatures", () => {
  it("accept exactly the signed bytes and refuse every other header or byte", () => {
    const header = signRecord(SECRET, VALUE);
    assert.match(header, /^v1=[0-9a-f]{64}$/);
    assert.deepEqual(verifyRecordSignature(SECRET, Buffer.from(VALUE), Buffer.from(header)), { ok: true });
    const refused = (bytes: string, value: Parameters<typeof verifyRecordSignature>[2], secret = SECRET) => {
      const check = verifyRecordSignature(secret, bytes, value);
      return check.ok ? "ok" : check.reason;
    };
    assert.equal(refused(VALUE.replace("1000", "9000"), header), "mismatch");
    assert.equal(refused(VALUE, header, `${SECRET}x`), "mismatch");
    assert.equal(refused(VALUE, undefined), "missing");
    assert.equal(refused(VALUE, [header, header]), "duplicate");
    assert.equal(refused(VALUE, header.toUpperCase()), "malformed");
    assert.equal(refused(VALUE, header.slice(0, -2)), "malformed");
    assert.equal(refused(VALUE, header.replace("v1=", "v2=")), "unknown_key_id");
  });

  it("are required of credit records only, and only when the operator secret is set", () => {
    const credit = { type: "credit", record_id: "c1" };
    const usage = { type: "usage", record_id: "u1" };
    const required = creditAuthorization({ AGENTMETER_OPERATOR_SECRET: SECRET });
    const open = creditAuthorization({});
    assert.equal(open.required, false);
    assert.deepEqual(authorizeRecord(open, credit, VALUE, undefined), { ok: true });
    assert.deepEqual(authorizeRecord(required, usage, VALUE, undefined), { ok: true });
    const unsigned = authorizeRecord(required, credit, VALUE, undefined);
    assert.equal(unsigned.ok, false);
    assert.equal(!unsigned.ok && unsigned.code, "RECORD_UNAUTHORIZED");
    const headers = signatureHeaders(SECRET, credit, VALUE);
    assert.ok(headers !== undefined);
    assert.deepEqual(
      authorizeRecord(required, credit, VALUE, { [SIGNATURE_HEADER]: headers[SIGNATURE_HEADER] as string }),
      {
        ok: true,
      },
    );
    assert.equal(signatureHeaders(SECRET, usage, VALUE), undefined, "usage records go unsigned");
    assert.equal(signatureHeaders(undefined, credit, VALUE), undefined, "no secret, no signature");
  });
});

describe("configuration of connections and secrets", () => {
  it("names the variable and never shows a secret when a value is refused", () => {
    const short = configError({ AGENTMETER_OPERATOR_SECRET: "tooshort" });
    assert.match(short, /AGENTMETER_OPERATOR_SECRET=<redacted> is invalid: must be at least 32 bytes/);
    assert.ok(!short.includes("tooshort"));
    const sasl = configError({ KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "u" });
    assert.match(sasl, /KAFKA_SASL_PASSWORD=undefined is invalid: SASL needs/);
    assert.match(
      configError({ KAFKA_SSL_CA_FILE: "/x.pem" }),
      /KAFKA_SSL=undefined is invalid: KAFKA_SSL_CA_FILE is set/,
    );
    assert.match(configError({ KAFKA_SSL: "yes" }), /KAFKA_SSL="yes" is invalid: expected "true" or "false"/);
    const uri = configError({ MONGODB_URI: "mongodb://admin:hunter2@:bad", CLICKHOUSE_URL: "ftp://x" });
    assert.ok(!uri.includes("hunter2"), uri);
  });

  it("refuses database names MongoDB would refuse or confuse with an app's", () => {
    assert.match(
      configError({ AGENTMETER_APP_DB_PREFIX: "p".repeat(20), AGENTMETER_MAX_ENTERPRISE_ID_LENGTH: "48" }),
      /AGENTMETER_MAX_ENTERPRISE_ID_LENGTH=.* would reach 68 bytes, over MongoDB's 63/,
    );
    assert.match(
      configError({ AGENTMETER_APP_DB_PREFIX: "app_", AGENTMETER_PLATFORM_DB: "APP_billing" }),
      /AGENTMETER_PLATFORM_DB="APP_billing" is invalid: it is also the name .* of app 'billing'/,
    );
    assert.match(
      configError({ AGENTMETER_PLATFORM_DB: "Billing", AGENTMETER_WORKFLOW_DB: "billing" }),
      /only by case/,
    );
    assert.equal(
      loadConfig({ AGENTMETER_APP_DB_PREFIX: "p".repeat(20) }).AGENTMETER_APP_DB_PREFIX.length,
      20,
    );
  });

  it("builds TLS and SASL options for every Kafka client, reading the CA file once", () => {
    assert.deepEqual(kafkaSecurityOptions({}), {});
    assert.deepEqual(kafkaSecurityOptions({ KAFKA_SSL: true }), { ssl: true });
    const dir = mkdtempSync(join(tmpdir(), "agentmeter-ca-"));
    try {
      const pem = join(dir, "ca.pem");
      writeFileSync(pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
      assert.deepEqual(kafkaSecurityOptions({ KAFKA_SSL: true, KAFKA_SSL_CA_FILE: pem }).ssl, {
        ca: [`-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n`],
      });
      const notPem = join(dir, "ca.txt");
      writeFileSync(notPem, "hello");
      assert.throws(
        () => kafkaSecurityOptions({ KAFKA_SSL: true, KAFKA_SSL_CA_FILE: notPem }),
        (error) =>
          isAgentmeterError(error, "CONFIG_INVALID") && /expected PEM certificates/.test(error.message),
      );
      assert.throws(
        () => kafkaSecurityOptions({ KAFKA_SSL: true, KAFKA_SSL_CA_FILE: join(dir, "missing.pem") }),
        (error) => isAgentmeterError(error, "CONFIG_INVALID") && /cannot be read/.test(error.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const sasl = kafkaSecurityOptions({
      KAFKA_SASL_MECHANISM: "scram-sha-512",
      KAFKA_SASL_USERNAME: "meter",
      KAFKA_SASL_PASSWORD: "pw",
    });
    assert.deepEqual(sasl.sasl, { mechanism: "scram-sha-512", username: "meter", password: "pw" });
  });
});

describe("redaction", () => {
  it("keeps hosts and user names and drops passwords from URLs and free text", () => {
    assert.equal(redactUrl("mongodb://meter:s3cret@db1,db2:27017/x"), "mongodb://meter:***@db1,db2:27017/x");
    assert.equal(
      redactUrl("https://ch:8443/?user=a&password=p%40ss&database=d"),
      "https://ch:8443/?user=a&password=***&database=d",
    );
    assert.equal(redactUrl("http://127.0.0.1:18123"), "http://127.0.0.1:18123");
    // A password whose "/" or "?" is not percent-encoded (a value the config refuses, shown in the refusal).
    assert.equal(
      redactUrl("mongodb://meter:s3/cr?et@mongo:27017/?a=b"),
      "mongodb://meter:***@mongo:27017/?a=b",
    );
    assert.equal(redactUrl("mongodb://s3/cret@mongo/"), "mongodb://***@mongo/");
    assert.equal(
      redactText("connect ECONNREFUSED mongodb://u:pw@h:1/ then http://a:b@c/"),
      "connect ECONNREFUSED mongodb://u:***@h:1/ then http://a:***@c/",
    );
    assert.equal(shownValue("KAFKA_SASL_PASSWORD", "pw"), "<redacted>");
    assert.equal(shownValue("MONGODB_URI", "mongodb://u:pw@h/"), '"mongodb://u:***@h/"');
  });

  it("censors secrets in log lines at the top level and one object down", () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on("data", (chunk: Buffer) => lines.push(chunk.toString("utf8")));
    const logger = createLogger("info", "test", out);
    logger.info(
      {
        MONGODB_URI: "mongodb://u:pw1@h/",
        config: {
          CLICKHOUSE_PASSWORD: "pw2",
          AGENTMETER_OPERATOR_SECRET: SECRET,
          CLICKHOUSE_URL: "http://d:pw3@c/",
        },
        sasl: { password: "pw4" },
      },
      "start",
    );
    logger.flush();
    const text = lines.join("");
    const line = JSON.parse(text) as Record<string, Record<string, unknown>>;
    for (const secret of ["pw1", "pw2", "pw3", "pw4", SECRET])
      assert.ok(!text.includes(secret), `${secret} leaked`);
    assert.equal(line.MONGODB_URI, "mongodb://u:***@h/");
    assert.equal(line.config?.CLICKHOUSE_URL, "http://d:***@c/");
    assert.equal(line.config?.CLICKHOUSE_PASSWORD, "[redacted]");
  });
});
