import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * A real librdkafka producer (the Python `confluent-kafka` package from PyPI, as agent runtimes written in
 * Python use it), with its default settings: its partitioner is `consistent_random` (crc32), not murmur2.
 * Installed once under the cache directory, like the stack's servers.
 */
const TARGET = join(process.env.AGENTMETER_CACHE ?? join(homedir(), ".cache", "agentmeter"), "python");

const SCRIPT = `
import json, sys
from confluent_kafka import Producer
brokers, topic = sys.argv[1], sys.argv[2]
producer = Producer({"bootstrap.servers": brokers, "acks": "all"})
placed = []
def report(err, msg):
    if err is not None:
        raise SystemExit(str(err))
    placed.append({"key": msg.key().decode(), "partition": msg.partition(), "offset": msg.offset()})
for line in sys.stdin:
    item = json.loads(line)
    producer.produce(topic, key=item["key"].encode(), value=item["value"].encode(), on_delivery=report)
    producer.poll(0)
producer.flush(30)
print(json.dumps(placed))
`;

function ensureInstalled(): void {
  const probe = spawnSync("python3", ["-c", "import confluent_kafka"], {
    env: { ...process.env, PYTHONPATH: TARGET },
  });
  if (probe.status === 0) return;
  mkdirSync(TARGET, { recursive: true });
  const install = spawnSync(
    "python3",
    [
      "-m",
      "pip",
      "install",
      "--quiet",
      "--disable-pip-version-check",
      "--no-cache-dir",
      "--target",
      TARGET,
      "confluent-kafka",
    ],
    { encoding: "utf8" },
  );
  if (install.status !== 0) throw new Error(`pip install confluent-kafka failed: ${install.stderr}`);
}

/** Produces keyed messages with librdkafka's defaults; returns where each landed. */
export function produceWithLibrdkafka(
  brokers: readonly string[],
  topic: string,
  messages: readonly { key: string; value: string }[],
): { key: string; partition: number; offset: number }[] {
  ensureInstalled();
  const run = spawnSync("python3", ["-c", SCRIPT, brokers.join(","), topic], {
    input: messages.map((message) => JSON.stringify(message)).join("\n"),
    env: { ...process.env, PYTHONPATH: TARGET },
    encoding: "utf8",
    timeout: 120_000,
  });
  if (run.status !== 0) throw new Error(`librdkafka producer failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split("\n").pop()!);
}
