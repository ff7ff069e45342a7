// The dashboard: plain script, no build step. Every figure it draws comes from the API with the key
// typed in above; the key stays in this page's memory (never stored, never put in a URL).

const charts = {};
// The integration test reads what each chart drew from here.
window.agentmeterCharts = charts;

const $ = (id) => document.getElementById(id);
const usd = (money) => Number(money.usd);

async function api(path) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${$("key").value.trim()}` } });
  const body = await response.json();
  if (!response.ok) {
    const error = new Error(`${response.status} ${body.error?.code}: ${body.error?.message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function draw(name, type, labels, datasets, options = {}) {
  charts[name]?.destroy();
  charts[name] = new Chart($(`chart-${name}`), {
    type,
    data: { labels, datasets },
    options: { animation: false, responsive: true, ...options },
  });
}

function monthRange(month) {
  const [year, mon] = month.split("-").map(Number);
  return {
    from: new Date(Date.UTC(year, mon - 1, 1)).toISOString(),
    to: new Date(Date.UTC(year, mon, 1)).toISOString(),
  };
}

function daysOf(range) {
  const days = [];
  for (let t = Date.parse(range.from); t < Date.parse(range.to); t += 86_400_000)
    days.push(new Date(t).toISOString());
  return days;
}

async function load() {
  const creator = $("creator").value.trim();
  const month = $("month").value.trim();
  const range = monthRange(month);
  const query = (extra) => new URLSearchParams({ from: range.from, to: range.to, ...extra }).toString();
  $("status").className = "";
  $("status").textContent = "loading...";
  try {
    const { apps } = await api(`/v1/creators/${encodeURIComponent(creator)}/apps`);
    // The list also names apps where only some records named this creator (earnings it is paid for);
    // the app routes answer only for apps the creator owns (docs/api.md), so those are left out here.
    const owned = await Promise.all(
      apps.map((app) =>
        api(`/v1/apps/${app.enterprise_id}/usage?${query({ window: "day" })}`).catch((error) => {
          if (error.status === 404) return null;
          throw error;
        }),
      ),
    );
    const usage = owned.filter((u) => u !== null);
    const ids = usage.map((u) => u.enterprise_id);
    const agentsBy = (by) =>
      api(`/v1/creators/${encodeURIComponent(creator)}/agents/top?${query({ by, limit: "10" })}`);
    const [paused, statement, byCost, byTime] = await Promise.all([
      Promise.all(ids.map((id) => api(`/v1/apps/${id}/paused-chats`))),
      api(`/v1/creators/${encodeURIComponent(creator)}/statements/${month}`),
      agentsBy("cost"),
      agentsBy("response_time"),
    ]);

    const days = daysOf(range);
    const perDay = (rows, figure) =>
      days.map((day) => {
        const row = rows.find((r) => r.bucket.slice(0, 10) === day.slice(0, 10));
        return row === undefined ? 0 : figure(row);
      });
    draw(
      "tokens",
      "line",
      days.map((d) => d.slice(0, 10)),
      usage.map((u) => ({ label: u.enterprise_id, data: perDay(u.rows, (r) => r.tokens) })),
    );
    draw(
      "cost",
      "line",
      days.map((d) => d.slice(0, 10)),
      usage.map((u) => ({ label: u.enterprise_id, data: perDay(u.rows, (r) => usd(r.cost)) })),
    );

    draw(
      "split",
      "bar",
      statement.lines.map((l) => l.enterprise_id),
      [
        { label: "creator share", data: statement.lines.map((l) => usd(l.creator_share)) },
        { label: "platform fee", data: statement.lines.map((l) => usd(l.platform_fee)) },
      ],
      { scales: { x: { stacked: true }, y: { stacked: true } } },
    );

    // Across the creator's apps, from the raw events: a record's cost shared by its agents' tokens.
    draw(
      "agent-cost",
      "bar",
      byCost.agents.map((a) => a.agent),
      [{ label: "cost (USD)", data: byCost.agents.map((a) => usd(a.cost)) }],
      { indexAxis: "y" },
    );
    const timed = byTime.agents.filter((a) => a.avg_response_ms !== null);
    draw(
      "agent-time",
      "bar",
      timed.map((a) => a.agent),
      [
        { label: "avg ms", data: timed.map((a) => a.avg_response_ms) },
        { label: "p95 ms", data: timed.map((a) => a.p95_response_ms) },
      ],
      { indexAxis: "y" },
    );

    draw(
      "paused",
      "bar",
      paused.map((p) => p.enterprise_id),
      [{ label: "paused chats", data: paused.map((p) => p.chats.length) }],
    );
    const rows = paused.flatMap((p) =>
      p.chats.map(
        (c) =>
          `<tr><td>${p.enterprise_id}</td><td>${c.chat_id}</td><td>${c.platform_user_id ?? ""}</td><td>${c.pause_reason ?? ""}</td></tr>`,
      ),
    );
    $("paused").innerHTML =
      rows.length === 0
        ? ""
        : `<tr><th>app</th><th>chat</th><th>end user</th><th>reason</th></tr>${rows.join("")}`;

    $("status").textContent =
      `${ids.length} apps, reconciliation ${statement.reconciliation.agrees ? "agrees" : "DIFFERS"}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("status").className = "error";
    $("status").textContent = error.message;
    document.body.dataset.loaded = "error";
  }
}

$("month").value = new Date().toISOString().slice(0, 7);
$("load").addEventListener("click", load);
