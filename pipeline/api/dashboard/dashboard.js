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
  if (!response.ok) throw new Error(`${response.status} ${body.error?.code}: ${body.error?.message}`);
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
    const ids = apps.map((app) => app.enterprise_id);
    const [usage, agents, paused, statement] = await Promise.all([
      Promise.all(ids.map((id) => api(`/v1/apps/${id}/usage?${query({ window: "day" })}`))),
      Promise.all(
        ids.map((id) => api(`/v1/apps/${id}/usage?${query({ window: "month", group_by: "agent" })}`)),
      ),
      Promise.all(ids.map((id) => api(`/v1/apps/${id}/paused-chats`))),
      api(`/v1/creators/${encodeURIComponent(creator)}/statements/${month}`),
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

    const byAgent = new Map();
    for (const rows of agents.map((a) => a.rows)) {
      for (const row of rows) {
        const seen = byAgent.get(row.group) ?? { tokens: 0, timed: 0, weight: 0 };
        seen.tokens += row.tokens;
        if (row.avg_response_ms !== null) {
          seen.timed += row.avg_response_ms * row.records;
          seen.weight += row.records;
        }
        byAgent.set(row.group, seen);
      }
    }
    const top = (score) =>
      [...byAgent.entries()]
        .map(([name, s]) => [name, score(s)])
        .filter(([, value]) => value !== null)
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
        .slice(0, 10);
    const byTokens = top((s) => s.tokens);
    const byTime = top((s) => (s.weight === 0 ? null : Math.round((s.timed / s.weight) * 10) / 10));
    draw(
      "agent-tokens",
      "bar",
      byTokens.map(([n]) => n),
      [{ label: "tokens", data: byTokens.map(([, v]) => v) }],
      { indexAxis: "y" },
    );
    draw(
      "agent-time",
      "bar",
      byTime.map(([n]) => n),
      [{ label: "avg ms", data: byTime.map(([, v]) => v) }],
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
