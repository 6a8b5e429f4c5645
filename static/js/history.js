// Patient history page: graded scores and per-region asymmetry over sessions (SVG), changes, evidence.
// The patient code is in the path (/p/<code>/history), the token in ?token=. Left and right are the
// patient's sides; side colours come from the page's CSS (--left, --right), like the dashboard.
"use strict";
(() => {
  const { api, el, token } = Stream;
  const code = decodeURIComponent(location.pathname.split("/")[2] || "");
  const base = `/api/p/${encodeURIComponent(code)}`;
  const q = `?token=${encodeURIComponent(token)}`;
  // one categorical colour per movement (Tableau 10); the sides use the palette (--left, --right)
  const COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  const SVG = "http://www.w3.org/2000/svg";
  const W = 640, H = 230, M = { l: 38, r: 12, t: 10, b: 40 };

  document.getElementById("patient-code").textContent = code;
  document.getElementById("export-json").href = `${base}/export.json${q}`;
  document.getElementById("export-csv").href = `${base}/export.csv${q}`;
  document.getElementById("export-fhir").href = `${base}/export.fhir.json${q}`;
  document.getElementById("print").onclick = () => window.print();

  const fmt = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toFixed(d);
  const signed = (v, d = 0) => (v === null || v === undefined) ? "–" : (v > 0 ? "+" : v < 0 ? "−" : "±") + Math.abs(v).toFixed(d);
  const when = (t) => new Date(t * 1000).toLocaleString();
  const day = (t) => new Date(t * 1000).toLocaleDateString();

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One plot: x = session index (labelled with its date), y from yMin to yMax.
  function plot(container, { labels, yMin, yMax, ticks, limit, series, height = H }) {
    const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, role: "img" });
    const n = labels.length;
    const pad = 34;  // room for the points' side offsets and the date labels at either end
    const x = (i) => M.l + pad + (n <= 1 ? (W - M.l - M.r - 2 * pad) / 2 : i * (W - M.l - M.r - 2 * pad) / (n - 1));
    const y = (v) => height - M.b - (v - yMin) / (yMax - yMin) * (height - M.t - M.b);
    for (const t of ticks) {
      root.append(svg("line", { class: "axis", x1: M.l, x2: W - M.r, y1: y(t), y2: y(t) }));
      root.append(svg("text", { x: M.l - 6, y: y(t) + 4, "text-anchor": "end" }, String(t)));
    }
    if (limit !== undefined) root.append(svg("line", { class: "limit", x1: M.l, x2: W - M.r, y1: y(limit), y2: y(limit) }));
    labels.forEach((label, i) => {
      root.append(svg("text", { x: x(i), y: height - M.b + 15, "text-anchor": "middle" }, `#${i + 1}`));
      root.append(svg("text", { x: x(i), y: height - M.b + 29, "text-anchor": "middle" }, label));
    });
    for (const s of series) {
      const pts = s.points.filter((p) => p.y !== null && p.y !== undefined);
      if (s.line && pts.length > 1) {
        root.append(svg("polyline", { class: "series", stroke: s.colour || "currentColor",
          "stroke-dasharray": s.dash || "", points: pts.map((p) => `${x(p.i) + (s.offset || 0)},${y(p.y)}`).join(" ") }));
      }
      for (const p of pts) {
        const cx = x(p.i) + (s.offset || 0);
        if (p.lo !== null && p.lo !== undefined && p.hi !== null && p.hi !== undefined) {
          root.append(svg("line", { class: `bar-${p.cls || "even"}`, "stroke-width": 2, x1: cx, x2: cx, y1: y(p.lo), y2: y(p.hi) }));
        }
        const dot = svg("circle", { cx, cy: y(p.y), r: 4, class: p.cls ? `point-${p.cls}` : (p.open ? "bound" : "exact") });
        if (!p.cls && !p.open && s.colour) dot.setAttribute("style", `fill:${s.colour}`);
        dot.append(svg("title", {}, p.title || ""));
        root.append(dot);
        if (p.tag) root.append(svg("text", { x: cx, y: y(Math.max(p.y, p.hi ?? p.y)) - 7, "text-anchor": "middle" }, p.tag));
      }
    }
    container.textContent = "";
    container.append(root);
  }

  function summary(data) {
    const body = document.querySelector("#summary tbody");
    body.textContent = "";
    const last = data.sessions[data.sessions.length - 1];
    document.getElementById("summary-when").textContent = last ? `(${when(last.created_at)}, ${data.sessions.length} session(s))` : "";
    const reasons = {};
    if (last && last.grades) {
      for (const m of last.grades.movements) { reasons[m.voluntary.key] = m.voluntary.reason; reasons[m.synkinesis.key] = m.synkinesis.reason; }
      reasons.resting = last.grades.resting.reason; reasons.composite = last.grades.composite.reason;
      for (const [name, r] of Object.entries(last.grades.regions || {})) reasons[`region:${name}.weaker_percent`] = r.reason;
    }
    const never = data.changes.filter((c) => c.latest === null && c.previous === null && c.first === null);
    for (const c of data.changes.filter((c) => !never.includes(c))) {
      const pct = c.key.endsWith("weaker_percent");
      const better = (d) => (d === null ? "" : (c.key.endsWith(".synkinesis") || c.key === "resting" ? -d : d) > 0 ? "up" : (d === 0 ? "" : "down"));
      const value = c.latest === null ? el("span", { class: "not-graded", text: "not graded" }) : `${fmt(c.latest)}${pct ? " %" : ""}`;
      body.append(el("tr", { "data-key": c.key },
        el("td", { text: c.title }), el("td", { class: "num" }, value),
        el("td", { class: `num ${better(c.since_previous)}`, text: signed(c.since_previous) }),
        el("td", { class: `num ${better(c.since_first)}`, text: signed(c.since_first) }),
        el("td", { class: "how", text: reasons[c.key] || (c.latest === null && last && last.grades
          ? `not in the latest session, graded ${last.grades.basis === "exercises" ? "per exercise" : "per region over the whole recording"}`
          : "") })));
    }
    if (never.length) {
      body.append(el("tr", { class: "never" }, el("td", { text: "Not graded in any session" }),
        el("td", { colspan: "4", class: "how", text: never.map((c) => `${c.title} (${reasons[c.key] || "not graded"})`).join("; ") })));
    }
  }

  function trends(data) {
    const sessions = data.sessions.filter((s) => s.grades);
    const labels = sessions.map((s) => day(s.created_at));
    // voluntary scores: one line per movement (or region on whole recordings)
    const keys = [];
    for (const s of sessions) for (const m of s.grades.movements) if (!keys.find((k) => k.key === m.key)) keys.push({ key: m.key, title: m.title });
    const series = keys.map((k, j) => ({
      colour: COLOURS[j % COLOURS.length], line: true, offset: (j - (keys.length - 1) / 2) * 3,
      points: sessions.map((s, i) => {
        const m = s.grades.movements.find((x) => x.key === k.key);
        const v = m ? m.voluntary : null;
        return { i, y: v ? v.value : null, lo: null, hi: null, title: v ? `${k.title}: ${fmt(v.value)} — ${v.reason}` : "" };
      }),
    }));
    plot(document.getElementById("plot-scores"), { labels, yMin: 0.5, yMax: 5.5, ticks: [1, 2, 3, 4, 5], series });
    const legend = document.getElementById("legend-scores");
    legend.textContent = "";
    keys.forEach((k, j) => legend.append(el("span", { style: `color:${COLOURS[j % COLOURS.length]}`, text: `● ${k.title}  ` })));
    legend.append(el("span", { text: "(a gap: not graded in that session)" }));
    // per-region asymmetry with intervals, coloured by the weaker side
    const regions = ["eyebrows", "eyes", "mouth"];
    const regionSeries = regions.map((name, j) => ({
      line: false, offset: (j - 1) * 14,
      points: sessions.map((s, i) => {
        const r = (s.grades.regions || {})[name];
        if (!r || r.weaker_percent === null) return { i, y: null };
        const iv = r.weaker_percent_interval || [null, null];
        return { i, y: r.weaker_percent, lo: iv[0], hi: iv[1], cls: r.weaker_side || "even", tag: name,
          title: `${name}: ${fmt(r.weaker_percent)} % — ${r.reason}` };
      }),
    }));
    plot(document.getElementById("plot-regions"), { labels, yMin: 0, yMax: 100, ticks: [0, 25, 50, 75, 100], limit: 43, series: regionSeries });
    const composite = document.getElementById("plot-composite");
    if (!sessions.some((s) => s.grades.composite.value !== null)) {
      composite.textContent = "";
      composite.append(el("p", { class: "muted", text: "Not computed in any session: " + (sessions.length ? sessions[sessions.length - 1].grades.composite.reason : "no session") }));
      return;
    }
    plot(composite, {
      labels, yMin: 0, yMax: 100, ticks: [0, 50, 100], height: 150,
      series: [{ line: true, colour: "#444", points: sessions.map((s, i) => {
        const c = s.grades.composite;
        return { i, y: c.value, open: c.upper_bound, title: `${fmt(c.value)} — ${c.reason}` };
      }) }],
    });
  }

  function sessionsTable(data) {
    const body = document.querySelector("#sessions tbody");
    body.textContent = "";
    for (const s of data.sessions) {
      const links = el("td", { class: "no-print" });
      for (const [name, text] of [["export.json", "JSON"], ["export.csv", "CSV"], ["export.fhir.json", "FHIR"]]) {
        links.append(el("a", { href: `${base}/s/${encodeURIComponent(s.session_id)}/${name}${q}`, text }), " ");
      }
      body.append(el("tr", {}, el("td", { text: when(s.created_at) }), el("td", { text: s.kind }), el("td", { text: s.label }),
        el("td", { text: s.grades ? s.grades.basis.replace("_", " ") : "–" }), el("td", { text: String(s.n_keyframes) }), links));
    }
  }

  function evidence(data) {
    const box = document.getElementById("evidence");
    box.textContent = "";
    data.sessions.forEach((s, i) => {
      if (!s.grades) return;
      const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "Score" }), el("th", { text: "Value" }),
        el("th", { text: "Range" }), el("th", { text: "Basis" }), el("th", { text: "How it was reached" }))));
      const body = el("tbody");
      const scores = [...s.grades.movements.flatMap((m) => [m.voluntary, m.synkinesis]), s.grades.resting, s.grades.composite];
      for (const sc of scores) {
        const kind = sc.kind === "voluntary" || sc.kind === "synkinesis" ? ` (${sc.kind} ${sc.scale})` : ` (${sc.scale})`;
        body.append(el("tr", {}, el("td", { text: sc.title + kind }),
          el("td", {}, sc.value === null ? el("span", { class: "not-graded", text: "not graded" }) : `${fmt(sc.value)}${sc.upper_bound ? " (upper bound)" : ""}`),
          el("td", { text: sc.low === null ? "–" : `${fmt(sc.low)}–${fmt(sc.high)}` }), el("td", { text: sc.basis || "" }),
          el("td", { class: "reason", text: sc.reason })));
      }
      table.append(body);
      const notes = el("ul", {}, ...[...s.grades.notes, ...(s.grades.warnings || [])].map((t) => el("li", { class: "reason", text: t })));
      box.append(el("details", i === data.sessions.length - 1 ? { open: "" } : {},
        el("summary", { text: `#${i + 1} ${when(s.created_at)} · ${s.kind}${s.label ? " · " + s.label : ""}` }), table, notes));
    });
  }

  async function load() {
    const status = document.getElementById("status");
    try {
      const data = await api(`${base}/history`);
      summary(data);
      trends(data);
      sessionsTable(data);
      evidence(data);
      status.textContent = data.sessions.length ? "" : "No session yet for this patient.";
      status.hidden = !!data.sessions.length;
      document.body.dataset.loaded = "1";
    } catch (e) {
      status.textContent = `Could not load the history: ${e.message}`;
    }
  }
  load();
})();
