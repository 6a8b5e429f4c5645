"use strict";
// Clinician dashboard: one WebSocket of complete snapshots (a skipped one loses nothing). The AU
// curves start from the whole stored series (au_series.csv, so a reopened session shows all of it)
// and are merged by keyframe time with each snapshot's recent tail.
(() => {
  const { el, fmt, sessionId, token } = Stream;
  const $ = (id) => document.getElementById(id);
  const REGION_NAMES = { eyebrows: "Eyebrows", eyes: "Eyes", mouth: "Mouth" };
  // The patient's sides, from /static/css/palette.css (the report uses the same file).
  const css = getComputedStyle(document.documentElement);
  const SIDE = { left: css.getPropertyValue("--left").trim(), right: css.getPropertyValue("--right").trim() };
  const MAX_POINTS = 20000;  // keyframes kept for the curves (hours of a session)
  let aus = [], selected = new Set(["AU1", "AU6", "AU12", "AU25"]), points = new Map(), charts = new Map(), last = null;

  const q = `?token=${encodeURIComponent(token)}`;
  for (const [id, name] of [["report-html", "report.html"], ["report-json", "report.json"], ["report-csv", "au_series.csv"]]) {
    $(id).href = `/api/s/${encodeURIComponent(sessionId)}/${name}${q}`;
  }

  function buildPicker() {
    const picker = $("au-picker");
    picker.textContent = "";
    aus.forEach((au) => {
      const box = el("input", { type: "checkbox", value: au });
      box.checked = selected.has(au);
      box.onchange = () => { box.checked ? selected.add(au) : selected.delete(au); buildCharts(); };
      picker.append(el("label", { style: "margin-right:.6rem" }, box, " " + au));
    });
  }

  // Small multiples: one chart per chosen AU, the patient's left and right drawn over each other
  // in the two side colours, so that where the sides part is what the eye sees.
  function chartWidth() {
    const holder = $("curves");
    return Math.max(220, Math.floor(((holder.clientWidth || 600) - 12) / 2));
  }

  function buildCharts() {
    const holder = $("curves");
    charts.forEach((chart) => chart.destroy());
    charts = new Map();
    holder.textContent = "";
    aus.forEach((au, i) => {
      if (!selected.has(au)) return;
      const box = el("figure", { class: "au-chart", "data-au": au }, el("figcaption", { text: au }));
      holder.append(box);
      const series = [{ label: "time (s)" },
        { label: "left", stroke: SIDE.left, width: 2 }, { label: "right", stroke: SIDE.right, width: 2 }];
      charts.set(au, new uPlot({ width: chartWidth(), height: 150, series, legend: { show: false },
        scales: { x: { time: false }, y: { range: [0, 5] } }, axes: [{ size: 30 }, { size: 30 }] }, chartData(i), box));
    });
  }

  function chartData(i) {
    const rows = [...points.values()].sort((a, b) => a.t - b.t);
    return [rows.map((r) => r.t), rows.map((r) => r.left[i]), rows.map((r) => r.right[i])];
  }

  function redrawCharts() {
    charts.forEach((chart, au) => chart.setData(chartData(aus.indexOf(au))));
  }

  const key = (t) => Math.round(t * 1000);  // a keyframe's session time, in ms, names it
  function addPoint(t, left, right) {
    if (t === null || t === undefined) return;
    points.set(key(t), { t, left, right });
  }

  function trimPoints() {
    if (points.size > MAX_POINTS) {
      const keys = [...points.keys()].sort((a, b) => a - b);
      keys.slice(0, points.size - MAX_POINTS).forEach((k) => points.delete(k));
    }
  }

  function mergeSeries(s) {
    s.time_s.forEach((t, k) => addPoint(t, s.left[k], s.right[k]));
    trimPoints();
  }

  // The whole stored series, once: the snapshots carry only the latest keyframes.
  async function loadStoredSeries() {
    const response = await fetch(`/api/s/${encodeURIComponent(sessionId)}/au_series.csv`,
                                 { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) return;
    const [header, ...lines] = (await response.text()).trim().split("\n");
    const names = header.split(",");
    const time = names.indexOf("time_s");
    const left = aus.map((au) => names.indexOf(`left_${au}`)), right = aus.map((au) => names.indexOf(`right_${au}`));
    if (time < 0 || left.includes(-1) || right.includes(-1)) return;
    for (const line of lines) {
      const cells = line.split(",").map(Number);
      addPoint(cells[time], left.map((c) => cells[c]), right.map((c) => cells[c]));
    }
    trimPoints();
    redrawCharts();
    $("curves").dataset.stored = String(lines.length);  // keyframes read from the store (the browser test reads it)
  }

  const NOT_YET = "not measured yet";

  function renderLatest(latest) {
    const body = $("latest").querySelector("tbody");
    body.textContent = "";
    if (!latest) {  // no keyframe yet: nothing measured, not zeros
      body.append(el("tr", { class: "not-yet" }, el("td", { colspan: "3", class: "muted", text: NOT_YET })));
      return;
    }
    aus.forEach((au, i) => {
      const cell = (side) => {
        const v = latest ? latest[side][i] : null;
        const td = el("td", { class: `bar-cell ${side}`, "data-au": au, "data-side": side }, el("span", { class: "bar", style: `width:${v === null ? 0 : (v / 5) * 100}%` }), fmt(v));
        return td;
      };
      body.append(el("tr", {}, el("td", { text: au }), cell("left"), cell("right")));
    });
  }

  // The words of a finding: the same as stream/symptoms/wording.py (report and command line).
  const STATUS_WORDS = {
    weaker_side: (side) => `${side} side weaker`,
    no_clear_difference: () => "no clear difference",
    did_not_move: () => "did not move",
    not_enough_keyframes: () => "not enough keyframes",
  };
  const statusWords = (r) => (STATUS_WORDS[r.status] || (() => r.status))(r.weaker_side);
  const pct = (v) => (v === null || v === undefined) ? "–" : `${Math.round(v)} %`;
  const interval = (iv) => (iv && iv[0] !== null && iv[1] !== null) ? `${Math.round(iv[0])}–${Math.round(iv[1])} %` : null;
  const pValue = (p) => (p === null || p === undefined) ? "–" : (p < 0.001 ? p.toExponential(1) : p.toFixed(3));

  function sideSpan(side) { return el("span", { class: side, text: side }); }

  function regionVerdict(r) {
    return el("strong", { class: r.status === "weaker_side" ? r.weaker_side : "", text: statusWords(r) });
  }

  function pairItem(p) {
    // e.g. "right AU6 with AU12: together in 9 of 11 keyframes with AU12 (other side 1), 3 episodes, corrected p = 0.002"
    const li = el("li", { "data-side": p.side }, sideSpan(p.side), ` ${p.au} with ${p.trigger}: `);
    if (!p.n_trigger) {  // the paper's rules carry no counts
      li.append(`co-occurrence difference ${fmt(p.cross_difference)}`);
      return li;
    }
    const episodes = `${p.episodes} episode${p.episodes === 1 ? "" : "s"}`;
    if (p.au === "AU43") {
      // eye closure pairs: this eye closing while the other stays open, against the reverse
      li.append(`closed while the other eye stayed open in ${p.n_together} of ${p.n_trigger} keyframes with the ` +
                `${p.trigger} moving (the other eye alone ${p.n_other_side}), ${episodes}, ` +
                `corrected p = ${pValue(p.p_adjusted)}`);
      return li;
    }
    if (p.share_with_trigger !== null && p.share_with_trigger !== undefined && p.au === "mouth" && p.trigger === "eyes") {
      // the mouth with the eyes' closure is read on each corner's lift (AU12)
      li.append(`the corner lifts (AU12) with the eyes' closure: ${Math.round(100 * p.share_with_trigger)} % of the ` +
                `corners' lift while both eyes close, ${Math.round(100 * p.share_without_trigger)} % otherwise; ` +
                `lifted in ${p.n_together} of ${p.n_trigger} keyframes with the eyes closed (other corner ` +
                `${p.n_other_side}), ${episodes}, corrected p = ${pValue(p.p_adjusted)}`);
      return li;
    }
    if (p.share_with_trigger !== null && p.share_with_trigger !== undefined) {
      // movement pairs: this side's share of the region's movement with and without the trigger
      li.append(`${Math.round(100 * p.share_with_trigger)} % of the ${p.au}' movement while the ${p.trigger} moves, ` +
                `${Math.round(100 * p.share_without_trigger)} % otherwise; moving in ${p.n_together} of ` +
                `${p.n_trigger} keyframes (other side ${p.n_other_side}), ${episodes}, corrected p = ${pValue(p.p_adjusted)}`);
      return li;
    }
    li.append(`active in ${p.n_together} of ${p.n_trigger} keyframes with ${p.trigger} on the other side ` +
              `(other side itself ${p.n_other_side}), ${episodes}, corrected p = ${pValue(p.p_adjusted)}`);
    return li;
  }

  function notYet(body, columns) {
    body.append(el("tr", { class: "not-yet" }, el("td", { colspan: String(columns), class: "muted", text: NOT_YET })));
  }

  // Findings with their evidence (stream/symptoms/evidence.py): null until the first keyframe.
  function renderFindings(findings) {
    const regions = $("regions").querySelector("tbody");
    const syn = $("synkinesis");
    const warn = $("findings-warnings");
    regions.textContent = ""; syn.textContent = ""; warn.textContent = "";
    warn.hidden = true;
    if (!findings) {
      notYet(regions, 4);
      syn.append(el("li", { class: "muted", text: NOT_YET }));
      $("rules-note").textContent = "";
      $("n-keyframes").textContent = "";
      return;
    }
    const first = Object.values(findings.regions || {})[0];
    // Recomputed from the whole series at most once a second: it may trail the latest keyframes.
    $("n-keyframes").textContent = first ? `Findings over ${first.n_keyframes} keyframes (recomputed at most once a second)` : "";
    for (const [name, r] of Object.entries(findings.regions || {})) {
      const iv = interval(r.weaker_percent_interval);
      const measured = r.status === "weaker_side" || r.status === "no_clear_difference";
      const verdict = el("td", { class: "verdict", "data-status": r.status }, regionVerdict(r));
      if (!measured && r.reason) verdict.append(el("div", { class: "reason muted", text: r.reason }));
      regions.append(el("tr", { "data-region": name }, el("td", { text: REGION_NAMES[name] || name }), verdict,
        el("td", { text: measured ? `${pct(r.weaker_percent)}${iv ? ` (${iv})` : ""}` : "–" }),
        el("td", { text: `${r.n_moving ?? 0} of ${r.n_keyframes ?? 0}${r.basis === "blinks" ? " (blinks)" : ""}` })));
    }
    const s = findings.synkinesis || {};
    const pairs = s.pairs || [];
    if (!pairs.length) syn.append(el("li", { text: `none found (${s.n_pairs_tested ?? 0} pairs had the support to be tested)` }));
    pairs.forEach((p) => syn.append(pairItem(p)));
    const warnings = findings.warnings || [];
    if (warnings.length) {
      warn.hidden = false;
      warn.append(el("strong", { text: "Before reading the findings" }), el("ul", {}, ...warnings.map((w) => el("li", { text: w }))));
    }
    $("rules-note").textContent = findings.rules === "paper"
      ? "Rules: the paper's (dead band on ΔAM, |co-occurrence difference| above the threshold), without intervals."
      : "A side is named weaker only when the region moved in enough keyframes, the 95 % interval excludes no difference and the difference exceeds what healthy faces show. A synkinesis pair needs one side's movement to follow the trigger (a broad smile, a firm eye closure) in at least two episodes, and a test that stays significant after correction for every pair tested.";
  }

  function renderStatistics(stats) {
    renderFindings(stats ? stats.findings : null);
    const regions = $("paper-regions").querySelector("tbody");
    const syn = $("paper-pairs");
    regions.textContent = ""; syn.textContent = "";
    const measured = stats && stats.n_keyframes > 0;
    if (!measured) {
      notYet(regions, 3);
      syn.append(el("li", { class: "muted", text: NOT_YET }));
      $("paper-note").textContent = "";
      drawHeatmap($("hm-left"), aus, null, stats && stats.mask, []);
      drawHeatmap($("hm-right"), aus, null, stats && stats.mask, []);
      return;
    }
    for (const [name, r] of Object.entries(stats.regions || {})) {
      regions.append(el("tr", { "data-region": name }, el("td", { text: REGION_NAMES[name] || name }), el("td", { text: fmt(r.delta_am) }),
        el("td", { class: r.weaker_side || "", text: r.weaker_side ? `patient's ${r.weaker_side} weaker` : "no obvious difference" })));
    }
    $("paper-note").textContent = `${stats.n_keyframes} keyframes; dead band |ΔAM| ≤ ${stats.asymmetry_threshold}`;
    const pairs = (stats.synkinesis && stats.synkinesis.pairs) || [];
    if (!pairs.length) syn.append(el("li", { text: "none" }));
    const strongest = [...pairs].sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
    strongest.slice(0, 8).forEach((p) => syn.append(el("li", { text: `${p.row} with ${p.col} (${p.matrix}): ${fmt(p.value)}` })));
    if (pairs.length > 8) syn.append(el("li", { class: "muted", text: `and ${pairs.length - 8} more (see the heatmaps and the report)` }));
    const diff = stats.cooccurrence_difference || {};
    drawHeatmap($("hm-left"), aus, diff["right-left|left"], stats.mask, pairs.filter((p) => p.matrix === "right-left|left"));
    drawHeatmap($("hm-right"), aus, diff["left-right|right"], stats.mask, pairs.filter((p) => p.matrix === "left-right|right"));
  }

  function exerciseVerdict(findings, name) {
    const r = findings && findings.regions && findings.regions[name];
    if (!r) return el("td", { class: "muted", text: findings ? "–" : NOT_YET });
    const td = el("td", { "data-region": name, "data-status": r.status }, regionVerdict(r));
    if (r.status === "weaker_side" || r.status === "no_clear_difference") td.append(el("span", { class: "muted", text: ` ${pct(r.weaker_percent)}` }));
    return td;
  }

  function exerciseSynkinesis(findings) {
    if (!findings) return el("td", { class: "muted", text: NOT_YET });
    const pairs = (findings.synkinesis && findings.synkinesis.pairs) || [];
    if (!pairs.length) return el("td", { text: "none" });
    return el("td", {}, ...pairs.map((p, k) => el("span", {}, k ? "; " : "", sideSpan(p.side),
      ` ${p.au} with ${p.trigger}` + (p.n_trigger ? ` (${p.n_together}/${p.n_trigger})` : ""))));
  }

  function renderExercises(segments) {
    const body = $("exercises").querySelector("tbody");
    body.textContent = "";
    const scope = $("scope");
    const chosen = scope.value;
    scope.textContent = "";
    scope.append(el("option", { value: "session", text: "whole session" }));
    for (const seg of segments) {
      const st = seg.statistics || {};
      const findings = st.n_keyframes ? st.findings : null;
      const title = `${seg.exercise.replaceAll("_", " ")} #${seg.segment_id + 1}`;
      body.append(el("tr", { "data-exercise": seg.exercise }, el("td", { text: title + (seg.end_s === null ? " (running)" : "") }),
        el("td", { text: String(st.n_keyframes ?? 0) }), exerciseVerdict(findings, "eyebrows"), exerciseVerdict(findings, "eyes"),
        exerciseVerdict(findings, "mouth"), exerciseSynkinesis(findings)));
      scope.append(el("option", { value: String(seg.segment_id), text: title }));
    }
    scope.value = [...scope.options].some((o) => o.value === chosen) ? chosen : "session";
  }

  // Snapshots carry matrices for the whole session and the running exercise only; a finished
  // exercise's full statistics are fetched when chosen (and again if its keyframe count changes).
  const fetched = new Map();
  function scopeStatistics(snapshot) {
    const chosen = $("scope").value;
    if (chosen === "session") return snapshot.statistics.session;
    const seg = snapshot.statistics.segments.find((s) => String(s.segment_id) === chosen);
    if (!seg || !seg.statistics) return snapshot.statistics.session;
    if (seg.statistics.cooccurrence_difference) return seg.statistics;
    const have = fetched.get(chosen);
    // The findings of an ended exercise may be completed after its last keyframe: the summary has the latest.
    if (have && have.n_keyframes === seg.statistics.n_keyframes) return Object.assign({}, have, { findings: seg.statistics.findings });
    if (!have || have.pending !== seg.statistics.n_keyframes) {
      fetched.set(chosen, Object.assign({}, seg.statistics, { pending: seg.statistics.n_keyframes }));
      Stream.api(`/api/s/${encodeURIComponent(sessionId)}/statistics?scope=segment:${chosen}`)
        .then((full) => { fetched.set(chosen, full); if ($("scope").value === chosen) renderStatistics(full); })
        .catch(() => {});
    }
    return fetched.get(chosen);
  }

  function renderHealth(h, snapshot) {
    $("health-fps").textContent = fmt(h.frames_per_s, 1);
    $("health-kps").textContent = fmt(h.keyframes_per_s, 1);
    $("health-frames").textContent = String(h.frames_received);
    $("health-keyframes").textContent = String(h.keyframes);
    $("health-stale").textContent = String(h.frames_stale_dropped);
    $("health-kdrops").textContent = String(h.keyframes_dropped);
    $("health-sdrops").textContent = String(h.frames_dropped_storage ?? 0);
    $("health-latency").textContent = `${fmt(h.latency_ms_p50, 0)} / ${fmt(h.latency_ms_p95, 0)} ms`;
    $("health-viewers").textContent = String(h.viewers);
    renderAlert(snapshot.alert);
    const status = snapshot.live ? "live" : snapshot.status === "ended" ? "ended" : "waiting";
    $("status").textContent = snapshot.live ? "live" : status === "ended" ? "ended (read-only)" : "waiting for the patient";
    $("status").className = `pill ${status}`;
    const current = snapshot.exercise.current;
    $("exercise-now").textContent = current ? `— now: ${current.exercise.replaceAll("_", " ")}` : "";
  }

  // Session problems (patient stalled, analysis stopped) shown above the stream health figures.
  function renderAlert(alert) {
    let box = $("session-alert");
    if (!box) {
      box = document.createElement("p");
      box.id = "session-alert";
      box.setAttribute("role", "alert");
      box.style.cssText = "margin:0 0 .5em;padding:.4em .6em;border-radius:4px;background:#fde8e8;color:#8a1c1c;font-weight:600";
      const health = $("health-fps").closest("dl");
      health.parentNode.insertBefore(box, health);
    }
    box.hidden = !alert;
    box.textContent = alert ? alert.message : "";
    box.dataset.code = alert ? alert.code : "";
  }

  let pending = false;
  function render(snapshot) {
    last = snapshot;
    if (!aus.length) {
      aus = snapshot.aus; buildPicker(); buildCharts();
      loadStoredSeries().catch(() => {});  // the curves keep the live tail if it cannot be read
    }
    $("proxy").hidden = !(snapshot.estimator && snapshot.estimator.is_proxy);
    const model = snapshot.estimator && snapshot.estimator.model;
    $("model").hidden = !(model && model.summary);
    if (model && model.summary) $("model").textContent = `AU model: ${model.summary}`;
    mergeSeries(snapshot.series);
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {  // at most one redraw per animation frame
      pending = false;
      redrawCharts();
      renderLatest(last.latest);
      renderExercises(last.statistics.segments);
      renderStatistics(scopeStatistics(last));
      renderHealth(last.health, last);
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    });
  }
  $("scope").onchange = () => last && renderStatistics(scopeStatistics(last));

  let backoff = 500;
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/ws/s/${encodeURIComponent(sessionId)}${q}`);
    ws.onopen = () => { $("ws-state").textContent = "connected"; backoff = 500; };
    ws.onmessage = (event) => render(JSON.parse(event.data));
    ws.onclose = () => {
      $("ws-state").textContent = "reconnecting";
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }
  window.addEventListener("resize", () => charts.forEach((chart) => chart.setSize({ width: chartWidth(), height: 150 })));
  connect();
})();
