import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AssignerProtocol } from "kafkajs";
import { rangeAssigner } from "../../pipeline/audit/topic-reader.ts";

/** What an assigner needs from kafkajs: it uses none of it (it knows its partitions already). */
const context = { cluster: {}, groupId: "g", logger: {} } as Parameters<ReturnType<typeof rangeAssigner>>[0];

describe("the audit reader's partition assigner", () => {
  it("assigns its only member the range's partitions and no other", async () => {
    const assigner = rangeAssigner("t.usage", [4, 1])(context);
    const assignments = await assigner.assign({
      members: [{ memberId: "reader-1", memberMetadata: Buffer.alloc(0) }],
      topics: ["t.usage"],
    });
    assert.equal(assignments.length, 1);
    assert.equal(assignments[0]!.memberId, "reader-1");
    const decoded = AssignerProtocol.MemberAssignment.decode(assignments[0]!.memberAssignment);
    assert.deepEqual(decoded?.assignment, { "t.usage": [4, 1] });
  });

  it("gives everything to one member (the first by id) if the group ever had two, never a partition twice", async () => {
    const assigner = rangeAssigner("t.usage", [0, 2])(context);
    const assignments = await assigner.assign({
      members: [
        { memberId: "b", memberMetadata: Buffer.alloc(0) },
        { memberId: "a", memberMetadata: Buffer.alloc(0) },
      ],
      topics: ["t.usage"],
    });
    assert.deepEqual(
      assignments.map(({ memberId }) => memberId),
      ["a"],
    );
    assert.deepEqual(await assigner.assign({ members: [], topics: ["t.usage"] }), []);
  });

  it("announces the topics it reads in its protocol metadata", () => {
    const { name, metadata } = rangeAssigner("t.usage", [0])(context).protocol({ topics: ["t.usage"] });
    assert.equal(name, "AgentmeterAuditRange");
    assert.deepEqual(AssignerProtocol.MemberMetadata.decode(metadata)?.topics, ["t.usage"]);
  });
});
