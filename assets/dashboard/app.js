// The Lamed dashboard: lists a namespace's experiments and shows, for each,
// its registry status (with pause, resume, stop and archive) and the report
// of GET /api/experiments/{name}/report as tables, verdicts and SVG charts,
// plus the names whose events were most often ignored. Names come from
// public tracking, so every one of them is put in the page as text (never
// as HTML).
"use strict";

const KEY_STORAGE = "lamed-api-key";
const COLOURS = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e", "#316395"];
const $ = (id) => document.getElementById(id);

/** Creates an element with attributes and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    // Through the CSSOM: the Content-Security-Policy refuses style attributes.
    else if (name === "style") node.style.cssText = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Creates an SVG element. */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child));
  return node;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

/** Calls the API with the key from this tab's session storage. */
async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  // Relative to the page, so the dashboard also works below a path prefix
  // (API Gateway serves it at /prod/dashboard).
  const headers = { "X-Api-Key": key || "" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path.replace(/^\//, ""), { ...options, headers });
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(KEY_STORAGE);
    showKeyForm("That API key was refused; enter it again.");
    throw new Error("API key refused");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(body.error || `HTTP ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return body;
}

function showKeyForm(message) {
  $("key-form").hidden = false;
  $("forget-key").hidden = true;
  $("experiments").replaceChildren();
  $("ignored").hidden = true;
  setStatus(message || "");
  $("api-key").focus();
}

const namespace = () => $("namespace").value.trim() || "alephbet";
const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(digits)}%`);
const num = (x) => (x === null || x === undefined ? "–" : Number(x).toLocaleString("en-US"));
const pValue = (p) => (p === null || p === undefined ? "–" : p < 0.0001 ? "<0.0001" : p.toFixed(4));

/** The registry's lifecycle rules, as the server states them (GET /api/lifecycle). */
let lifecycle = null;

/** Lifecycle moves: the status each leads to, its PATCH body and its confirmation; which statuses allow it comes from `lifecycle`. */
const ACTIONS = [
  { label: "Pause", to: "paused", body: { status: "paused" },
    confirm: (name) => `Pause experiment "${name}"? Its events will be ignored, not counted, until you resume it.` },
  { label: "Resume", to: "running", body: { status: "running" },
    confirm: (name) => `Resume experiment "${name}"? Its events will be counted again.` },
  { label: "Stop", to: "stopped", stop: true },
  { label: "Archive", to: "archived", body: { status: "archived" },
    confirm: (name) => `Archive experiment "${name}"? Its events will be ignored and it leaves the default list; its counts are kept. This cannot be undone.` },
];

/** What the status filter lets through; experiments without a record count as running. */
function statusShown(status) {
  const filter = $("status-filter").value;
  if (filter === "all") return true;
  if (filter === "") return lifecycle.listed_by_default.includes(status);
  return status === filter;
}

/** Keeps the namespace and status filter in the URL's fragment (never the key), so a reload or a bookmark shows the same view. */
function rememberView() {
  const view = new URLSearchParams({ namespace: namespace() });
  if ($("status-filter").value) view.set("status", $("status-filter").value);
  history.replaceState(null, "", `#${view}`);
}

/** Restores the view a fragment names. */
function restoreView() {
  const view = new URLSearchParams(location.hash.slice(1));
  if (view.get("namespace")) $("namespace").value = view.get("namespace");
  const status = view.get("status") || "";
  if ([...$("status-filter").options].some((o) => o.value === status)) $("status-filter").value = status;
}

// Bumped by every load, so the answers of an earlier load are dropped.
let generation = 0;

// The namespace's open alerts by experiment and key (GET /api/alerts).
let openAlerts = {};

/** The badge words of an open alert; status changes already show as the status badge. */
function alertLabel(key) {
  if (key === "srm") return "split mismatch";
  if (key === "stalled") return "stalled";
  if (key.startsWith("decision:")) {
    const [, goal, variant] = key.split(":");
    return `decided: ${variant} on ${goal}`;
  }
  return null;
}

/** Loads the namespace's experiments (counted and registered), then each report. */
async function loadExperiments() {
  $("key-form").hidden = true;
  $("forget-key").hidden = false;
  setStatus("Loading…");
  const mine = ++generation;
  rememberView();
  const container = $("experiments");
  container.replaceChildren();
  const ns = namespace();
  const query = `namespace=${encodeURIComponent(ns)}`;
  let counted, records;
  try {
    lifecycle = lifecycle || (await api("/api/lifecycle"));
    // A namespace with no counts answers 404 here; its records may still exist.
    let alerts;
    [counted, records, alerts] = await Promise.all([
      api(`/experiments?${query}`).catch((err) => { if (err.status === 404) return [{}]; throw err; }),
      api(`/api/experiments?${query}&status=all`),
      // Badges are extra: a server without the route still shows the rest.
      api(`/api/alerts?${query}`).catch(() => ({})),
    ]);
    if (mine === generation) openAlerts = alerts;
  } catch (err) {
    if (mine === generation && err.message !== "API key refused") setStatus(err.message, true);
    return;
  }
  if (mine !== generation) return;
  loadIgnored(query, mine);
  const byName = new Map(records.map((r) => [r.name, r]));
  const names = [...new Set([...counted.slice(1).map((entry) => entry.experiment), ...byName.keys()])];
  const shown = names.filter((name) => statusShown(byName.has(name) ? byName.get(name).status : "running"));
  const hidden = names.length - shown.length;
  if (!names.length) setStatus(`No experiments in ${ns} yet.`);
  else {
    setStatus(`${shown.length} experiment${shown.length === 1 ? "" : "s"} in ${ns}` +
      (hidden ? ` (${hidden} more hidden by the status filter)` : ""));
  }
  for (const name of shown) {
    const record = byName.get(name) || null;
    const card = el("section", { class: "experiment", "data-experiment": name }, cardHead(name, record), el("p", { class: "note" }, "Loading…"));
    container.append(card);
    loadReport(card, name, record);
  }
}

async function loadReport(card, name, record, control, by) {
  const params = new URLSearchParams({ namespace: namespace() });
  if (control) params.set("control", control);
  if (by) params.set("by", by);
  try {
    const report = await api(`/api/experiments/${encodeURIComponent(name)}/report?${params}`);
    renderReport(card, report);
  } catch (err) {
    // A registered experiment has no report before its first participant.
    const message = err.status === 404 && record ? "No participant counted yet." : err.message;
    card.replaceChildren(cardHead(name, record), el("div", { class: "toolbar" }, lifecycleButtons(name, record, [])),
      el("p", { class: "note" }, message));
  }
}

/** The card's heading with its status badge, description and decision. */
function cardHead(name, record) {
  const badges = [];
  if (record) {
    badges.push(el("span", { class: `badge ${record.status}`, "data-status": record.status }, record.status));
    if (record.status === "stopped" || (record.decision && record.status === "archived")) {
      const winner = record.decision && record.decision.winner;
      badges.push(el("span", { class: "badge winner", "data-winner": winner || "" }, winner ? `winner: ${winner}` : "no winner"));
    }
    if (record.automatic) badges.push(el("span", { class: "badge", title: "created by its first event, not registered by its owner" }, "automatic"));
  } else {
    badges.push(el("span", { class: "badge", title: "no registry record: counted as before the registry" }, "no record"));
  }
  for (const [key, alert] of Object.entries(openAlerts[name] || {})) {
    const label = alertLabel(key);
    if (label) badges.push(el("span", { class: "badge alert", "data-alert": key, title: alert.summary }, label));
  }
  const head = [el("h2", {}, name, " ", badges)];
  if (record && record.description) head.push(el("p", { class: "description" }, record.description));
  if (record && record.decision) {
    const when = new Date(record.decision.decided_ms).toISOString().slice(0, 16).replace("T", " ");
    head.push(el("p", { class: "note decision" }, `Decided ${when} UTC${record.decision.note ? `: ${record.decision.note}` : "."}`));
  }
  return head;
}

/** The buttons its status allows; `labels` are the variants seen in its report. */
function lifecycleButtons(name, record, labels) {
  if (!record) return [];
  const allowed = lifecycle.transitions[record.status] || [];
  return ACTIONS.filter((a) => allowed.includes(a.to)).map((a) =>
    el("button", { type: "button", class: a.stop || a.label === "Archive" ? "danger" : "", "data-action": a.label.toLowerCase(),
      onclick: () => changeStatus(name, record, a, labels) }, a.label));
}

/** Asks for confirmation (Stop: for the winner and a note), then PATCHes the record. */
async function changeStatus(name, record, action, labels) {
  let body = action.body;
  if (action.stop) {
    const variants = record.variants.length ? record.variants.map((v) => v.name) : labels;
    const decision = await askStop(name, variants);
    if (!decision) return;
    body = { status: "stopped", winner: decision.winner, note: decision.note };
  } else if (!window.confirm(action.confirm(name))) {
    return;
  }
  try {
    const changed = await api(`/api/experiments/${encodeURIComponent(name)}?namespace=${encodeURIComponent(namespace())}`,
      { method: "PATCH", body: JSON.stringify(body) });
    await loadExperiments();
    setStatus(`${name} is now ${changed.status}.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

// The pending answer of the stop dialog.
let stopAnswer = null;

/** Opens the stop dialog; resolves to {winner, note} or null when cancelled. */
function askStop(name, variants) {
  $("stop-title").textContent = `Stop experiment "${name}"`;
  $("stop-winner").replaceChildren(el("option", { value: "" }, "no winner"), ...variants.map((v) => el("option", { value: v }, v)));
  $("stop-winner").value = "";
  $("stop-note").value = "";
  $("stop-dialog").showModal();
  return new Promise((resolve) => { stopAnswer = resolve; });
}

function closeStop(answer) {
  const resolve = stopAnswer;
  stopAnswer = null;
  if ($("stop-dialog").open) $("stop-dialog").close();
  if (resolve) resolve(answer);
}

/** The "Most ignored" panel: shown while some events were ignored. */
async function loadIgnored(query, mine) {
  let summary;
  try {
    summary = await api(`/api/ignored?${query}`);
  } catch {
    summary = { top: [], others: 0 };
  }
  if (mine !== generation) return;
  const explain = {
    unregistered: "not registered (a typo, or register it)",
    cap: "over a cap",
    paused: "paused",
    stopped: "stopped",
    archived: "archived",
    bot: "from a bot",
  };
  const parts = [];
  if (summary.top.length) {
    const head = el("tr", {}, ["Experiment", "Reason", "Events"].map((h) => el("th", {}, h)));
    const rows = summary.top.map((row) => el("tr", { "data-experiment": row.experiment, "data-reason": row.reason },
      el("td", {}, row.experiment), el("td", {}, explain[row.reason] || row.reason), el("td", {}, num(row.events))));
    parts.push(el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, rows))));
  }
  if (summary.others) parts.push(el("p", { class: "note" }, `${num(summary.others)} more ignored events (all namespaces) not listed.`));
  $("ignored-rows").replaceChildren(...parts);
  $("ignored").hidden = parts.length === 0;
}

function renderReport(card, report) {
  const record = report.record || null;
  const by = report.segments ? report.segments.dimension : "";
  const controlSelect = el("select", { "aria-label": "control variant", onchange: (e) => loadReport(card, report.experiment, record, e.target.value, by) },
    report.variants.map((v) => {
      const option = el("option", { value: v.label }, v.label);
      option.selected = v.label === report.control;
      return option;
    }));
  const bySelect = el("select", { "aria-label": "break down by", "data-breakdown": "",
    onchange: (e) => loadReport(card, report.experiment, record, report.control, e.target.value) },
    [["", "nothing"], ["device", "device"], ["browser", "browser"], ["country", "country"]].map(([value, label]) => {
      const option = el("option", { value }, label);
      option.selected = value === by;
      return option;
    }));
  const toolbar = el("div", { class: "toolbar" },
    el("label", {}, "Control ", controlSelect),
    el("label", {}, "Break down by ", bySelect),
    el("button", { type: "button", onclick: () => exportCsv(report) }, "Export CSV"),
    lifecycleButtons(report.experiment, record, report.variants.map((v) => v.label)),
    el("button", { type: "button", class: "danger", onclick: () => deleteExperiment(report.experiment) }, "Delete"));
  const parts = [...cardHead(report.experiment, record), toolbar];
  if (report.srm && report.srm.mismatch) {
    parts.push(el("p", { class: "srm", role: "alert" },
      `Sample ratio mismatch: participants do not match the expected split (p = ${pValue(report.srm.test.p_value)}). ` +
      "Check how variants are assigned and tracked before trusting these results."));
  }
  if (report.goals.length === 0) parts.push(el("p", { class: "note" }, "No goal completed yet."));
  for (const goal of report.goals) parts.push(...renderGoal(goal, report));
  if (report.adaptive) parts.push(...adaptiveSection(report.adaptive));
  if (report.segments) parts.push(segmentSection(report));
  parts.push(el("div", { class: "charts" },
    participantsChart(report),
    report.goals.filter((g) => g.analysis).map((g) => conversionChart(g, report))));
  card.replaceChildren(...parts);
}

function renderGoal(goal, report) {
  const out = [el("p", { class: "verdict" }, goal.verdict)];
  if (!goal.analysis) {
    out.push(el("p", { class: "note" }, goal.note || ""));
    return out;
  }
  const head = el("tr", {}, ["Variant", "Participants", "Conversions", "Rate (95% CI)", "Uplift (95% CI)", "p (Holm)", "Beats control", "Best"].map((h) => el("th", {}, h)));
  const rows = goal.analysis.variants.map((v) => {
    const c = v.comparison;
    const uplift = c && c.uplift;
    const upliftText = uplift ? `${pct(uplift.estimate)} (${uplift.interval ? `${pct(uplift.interval.lower)} … ${pct(uplift.interval.upper)}` : "–"})` : "control";
    const rateText = v.rate === null ? "–" : `${pct(v.rate, 2)} (${v.interval ? `${pct(v.interval.lower, 2)} … ${pct(v.interval.upper, 2)}` : "–"})`;
    const upliftClass = c && c.significant ? (uplift && uplift.estimate > 0 ? "good" : "bad") : "";
    return el("tr", { "data-variant": v.label },
      el("td", {}, v.label + (v.is_control ? " (control)" : "")),
      el("td", {}, num(v.trials)),
      el("td", {}, num(v.successes)),
      el("td", {}, rateText),
      el("td", { class: upliftClass }, upliftText),
      el("td", {}, c ? pValue(c.adjusted_p_value) : "–"),
      el("td", {}, c ? pct(c.chance_to_beat_control) : "–"),
      el("td", {}, pct(v.chance_to_be_best)));
  });
  out.push(el("div", { class: "scroll" }, el("table", { "data-goal": goal.goal }, el("thead", {}, head), el("tbody", {}, rows))));
  if (goal.values) out.push(valuesTable(goal));
  else if (goal.values_note) out.push(el("p", { class: "note" }, `Values: ${goal.values_note}`));
  return out;
}

/**
 * The breakdown by one dimension: per value, a table per goal (participants,
 * conversions, rate, uplift, p-value corrected across every value, variant
 * and goal) and a small chart of the rates; exploratory, so it says so.
 */
function segmentSection(report) {
  const s = report.segments;
  const parts = [el("p", { class: "note exploratory" },
    `By ${s.dimension}: ${s.note}. p-values corrected (${s.correction}) across ${num(s.tests)} tests; values with fewer than 30 participants in a variant are not tested.`)];
  if (!s.values.length) parts.push(el("p", { class: "note" }, `No ${s.dimension} recorded for this experiment.`));
  const head = el("tr", {}, ["Variant", "Participants", "Conversions", "Rate (95% CI)", "Uplift (95% CI)", `p (${s.correction})`].map((h) => el("th", {}, h)));
  const cells = [];
  for (const value of s.values) {
    const tables = value.goals.map((goal) => {
      const rows = goal.variants.map((v) => {
        const u = v.uplift;
        const upliftText = v.label === report.control ? "control"
          : u ? `${pct(u.estimate)} (${u.interval ? `${pct(u.interval.lower)} … ${pct(u.interval.upper)}` : "–"})` : "–";
        const rateText = v.rate === null ? "–" : `${pct(v.rate, 2)} (${v.interval ? `${pct(v.interval.lower, 2)} … ${pct(v.interval.upper, 2)}` : "–"})`;
        return el("tr", { "data-variant": v.label },
          el("td", {}, v.label),
          el("td", {}, num(v.participants)),
          el("td", {}, num(v.conversions)),
          el("td", {}, rateText),
          el("td", { class: v.significant ? (u && u.estimate > 0 ? "good" : "bad") : "" }, upliftText),
          el("td", {}, v.adjusted_p_value === null ? "–" : pValue(v.adjusted_p_value)));
      });
      return el("div", { class: "scroll" }, el("p", { class: "note" }, goal.goal),
        el("table", { "data-segment-goal": goal.goal }, el("thead", {}, head.cloneNode(true)), el("tbody", {}, rows)));
    });
    const srm = value.srm && value.srm.mismatch
      ? el("p", { class: "srm", role: "alert" }, `Sample ratio mismatch in ${value.value} (p = ${pValue(value.srm.test.p_value)}).`) : null;
    const untested = value.tested ? null : el("span", { class: "note" }, " (too few participants for tests)");
    cells.push(el("div", { class: "segment", "data-segment": value.value }, el("h3", {}, value.value, untested), srm, tables,
      value.goals.length ? rateBars(value.goals[0]) : null));
  }
  parts.push(el("div", { class: "segments" }, cells));
  return el("div", { "data-segments": s.dimension }, parts);
}

/** One small chart per value: the first goal's rate per variant, as bars. */
function rateBars(goal) {
  const width = 220, bar = 16, gap = 6, left = 70;
  const height = goal.variants.length * (bar + gap) + gap;
  const max = Math.max(1e-9, ...goal.variants.map((v) => (v.interval ? v.interval.upper : v.rate || 0)));
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${goal.goal} rate by variant` });
  goal.variants.forEach((v, i) => {
    const y = gap + i * (bar + gap);
    const w = ((v.rate || 0) / max) * (width - left - 50);
    chart.append(svg("text", { x: left - 4, y: y + bar - 4, "text-anchor": "end" }, v.label),
      svg("rect", { x: left, y, width: w, height: bar, fill: COLOURS[i % COLOURS.length] }),
      svg("text", { x: left + w + 4, y: y + bar - 4 }, v.rate === null ? "–" : pct(v.rate, 1)));
  });
  return chart;
}

/** A goal's values: sums, means per participant and per conversion, and the
 * Welch test of the mean per participant against the control. */
function valuesTable(goal) {
  const money = (x) => (x === null || x === undefined ? "–" : x.toFixed(2));
  const ci = (i) => (i ? `${money(i.lower)} … ${money(i.upper)}` : "–");
  const mean = (m) => (m ? `${money(m.mean)} (${ci(m.interval)})` : "–");
  const head = el("tr", {}, ["Variant", "Sum", "Per participant (95% CI)", "Per conversion (95% CI)", "Difference (95% CI)", "Lift", "p (Holm)"].map((h) => el("th", {}, h)));
  const rows = goal.values.variants.map((v) => {
    const c = v.comparison;
    const welch = c && c.welch;
    const differenceClass = c && c.significant ? (c.difference > 0 ? "good" : "bad") : "";
    return el("tr", { "data-variant": v.label },
      el("td", {}, v.label + (v.is_control ? " (control)" : "")),
      el("td", {}, money(v.sum)),
      el("td", {}, mean(v.per_participant)),
      el("td", {}, mean(v.per_conversion)),
      el("td", { class: differenceClass }, c ? `${money(c.difference)} (${welch ? ci(welch.interval) : "–"})` : "control"),
      el("td", {}, c && c.lift ? pct(c.lift.estimate) : "–"),
      el("td", {}, c ? pValue(c.adjusted_p_value) : "–"));
  });
  return el("div", { class: "scroll" },
    el("p", { class: "note" }, `Values of ${goal.goal} (participants who did not convert count as 0):`),
    el("table", { "data-values": goal.goal }, el("thead", {}, head), el("tbody", {}, rows)));
}

/** An adaptive experiment: its latest weights, and its goal's estimates
 * stratified by weight period. */
function adaptiveSection(adaptive) {
  const parts = [el("p", { class: "note" },
    `Adaptive on ${adaptive.adaptive.goal}: ${num(adaptive.periods)} periods stored, ${num(adaptive.strata)} strata.`)];
  if (adaptive.latest) {
    const w = adaptive.latest.variants.map((v, i) => `${v} ${adaptive.latest.weights[i]}%`).join(", ");
    parts.push(el("p", { "data-adaptive-weights": "" }, `Latest weights: ${w}${adaptive.latest.burn_in ? " (burn-in)" : ""}`));
  }
  if (adaptive.srm && adaptive.srm.mismatch) {
    parts.push(el("p", { class: "srm", role: "alert" },
      `Sample ratio mismatch against each period's weights (p = ${pValue(adaptive.srm.test.p_value)}).`));
  }
  if (adaptive.rates) {
    const head = el("tr", {}, ["Variant", "Rate, by period (95% CI)", "Difference (95% CI)"].map((h) => el("th", {}, h)));
    const rows = adaptive.rates.variants.map((v) => {
      const c = v.comparison;
      const e = v.estimate;
      return el("tr", { "data-variant": v.label },
        el("td", {}, v.label),
        el("td", {}, e ? `${pct(e.estimate, 2)} (${e.interval ? `${pct(e.interval.lower, 2)} … ${pct(e.interval.upper, 2)}` : "–"})` : "–"),
        el("td", {}, c ? `${pct(c.difference, 2)} (${c.interval ? `${pct(c.interval.lower, 2)} … ${pct(c.interval.upper, 2)}` : "–"})` : "control"));
    });
    parts.push(el("div", { class: "scroll" }, el("table", { "data-adaptive": "" }, el("thead", {}, head), el("tbody", {}, rows))));
  }
  if (adaptive.note) parts.push(el("p", { class: "note" }, adaptive.note));
  return parts;
}

/**
 * The y axis from 0: about four equal steps of 1, 2 or 5 times a power of
 * ten, ending at or above `max`, each labelled so that no two labels read
 * the same. Counts (`whole`) step by whole numbers (0, 1, 2, 3 for a
 * maximum of 3, never "0, 1, 1, 2, 3"); rates are shown in percent with
 * as many decimals as the step needs.
 */
function axisTicks(max, whole) {
  const raw = Math.max(max, whole ? 1 : 1e-6) / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * (1 - 1e-9));
  if (whole) step = Math.max(1, Math.round(step));
  const count = Math.max(1, Math.ceil(max / step - 1e-9));
  const ticks = Array.from({ length: count + 1 }, (_, i) => i * step);
  const digits = Math.max(0, -Math.floor(Math.log10(step * 100) + 1e-9));
  const label = whole ? (v) => Math.round(v).toLocaleString("en-US") : (v) => pct(v, digits);
  return { ticks, label };
}

/** A line chart: x = day index, y on `axis` (from `axisTicks`); optional bands. */
function lineChart(title, days, lines, axis) {
  const width = 520, height = 200, left = 48, right = 10, top = 10, bottom = 28;
  const n = days.length;
  const max = axis.ticks[axis.ticks.length - 1];
  // A single day sits in the middle; more days spread over the width.
  const x = (i) => (n < 2 ? (left + width - right) / 2 : left + (i * (width - left - right)) / (n - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / (max || 1));
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  for (const v of axis.ticks) {
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: "#e3e6ec" }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "y-tick" }, axis.label(v)));
  }
  if (days.length === 1) {
    chart.append(svg("text", { x: x(0), y: height - 8, "text-anchor": "middle", class: "x-tick" }, days[0]));
  } else if (days.length > 1) {
    chart.append(svg("text", { x: left, y: height - 8, class: "x-tick" }, days[0]),
      svg("text", { x: width - right, y: height - 8, "text-anchor": "end", class: "x-tick" }, days[days.length - 1]));
  }
  lines.forEach((line, index) => {
    const colour = COLOURS[index % COLOURS.length];
    if (line.band) {
      const upper = line.band.map((b, i) => (b ? `${x(i)},${y(b.upper)}` : null)).filter(Boolean);
      const lower = line.band.map((b, i) => (b ? `${x(i)},${y(b.lower)}` : null)).filter(Boolean).reverse();
      if (upper.length) chart.append(svg("polygon", { points: [...upper, ...lower].join(" "), fill: colour, "fill-opacity": 0.15, class: "band" }));
      // A single day has no area to shade: draw the interval as a bar.
      if (n === 1 && line.band[0]) {
        chart.append(svg("line", { x1: x(0), x2: x(0), y1: y(line.band[0].lower), y2: y(line.band[0].upper), stroke: colour, "stroke-width": 6, "stroke-opacity": 0.3 }));
      }
    }
    const points = line.values.map((v, i) => (v === null ? null : [x(i), y(v)])).filter(Boolean);
    chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 2, class: "series", "data-variant": line.label }));
    // Few points: mark each, so a single day still shows.
    if (points.length <= 31) {
      for (const [px, py] of points) chart.append(svg("circle", { cx: px, cy: py, r: 3, fill: colour }));
    }
  });
  const legend = el("div", { class: "legend" }, lines.map((line, i) => el("span", {}, el("i", { style: `background:${COLOURS[i % COLOURS.length]}` }), line.label)));
  return el("figure", {}, chart, legend, el("figcaption", {}, title));
}

function participantsChart(report) {
  const lines = report.variants.map((v) => {
    const series = report.daily.series.find((s) => s.event === "participate" && s.variant === v.label);
    return { label: v.label, values: series ? series.counts : report.daily.days.map(() => 0) };
  });
  const max = Math.max(1, ...lines.flatMap((l) => l.values));
  return lineChart("Participants per day", report.daily.days, lines, axisTicks(max, true));
}

function conversionChart(goal, report) {
  const lines = goal.cumulative.map((c) => ({ label: c.variant, values: c.rate, band: c.interval }));
  const max = Math.min(1, Math.max(0.01, ...goal.cumulative.flatMap((c) => c.interval.map((i) => (i ? i.upper : 0)))));
  return lineChart(`Cumulative conversion on ${goal.goal}, with 95% interval`, report.daily.days, lines, axisTicks(max, false));
}

/** Downloads the report's table rows as CSV (cells made by csv.js). */
function exportCsv(report) {
  const rows = [["experiment", "goal", "variant", "control", "participants", "conversions", "rate", "rate_low", "rate_high", "uplift", "uplift_low", "uplift_high", "p_value_holm", "chance_to_beat_control", "chance_to_be_best", "expected_loss"]];
  for (const goal of report.goals) {
    if (!goal.analysis) continue;
    for (const v of goal.analysis.variants) {
      const c = v.comparison || {};
      const u = c.uplift || {};
      rows.push([report.experiment, goal.goal, v.label, v.is_control, v.trials, v.successes, v.rate,
        v.interval && v.interval.lower, v.interval && v.interval.upper, u.estimate, u.interval && u.interval.lower,
        u.interval && u.interval.upper, c.adjusted_p_value, c.chance_to_beat_control, v.chance_to_be_best, v.expected_loss]);
    }
  }
  const blob = new Blob([rows.map((r) => r.map(csvCell).join(",")).join("\n") + "\n"], { type: "text/csv" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `${report.experiment}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
}

async function deleteExperiment(name) {
  if (!window.confirm(`Delete experiment "${name}" and all its counts? This cannot be undone.`)) return;
  try {
    await api(`/delete?namespace=${encodeURIComponent(namespace())}&experiment=${encodeURIComponent(name)}`, { method: "DELETE" });
    await loadExperiments();
    setStatus(`Deleted ${name}.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
  $("api-key").value = "";
  loadExperiments();
});
$("namespace-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (sessionStorage.getItem(KEY_STORAGE)) loadExperiments();
});
$("status-filter").addEventListener("change", () => {
  if (sessionStorage.getItem(KEY_STORAGE)) loadExperiments();
});
$("stop-form").addEventListener("submit", (event) => {
  event.preventDefault();
  closeStop({ winner: $("stop-winner").value || null, note: $("stop-note").value.trim() });
});
$("stop-cancel").addEventListener("click", () => closeStop(null));
// Escape closes the dialog without an answer.
$("stop-dialog").addEventListener("close", () => closeStop(null));
$("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  showKeyForm("Key forgotten.");
});
restoreView();
if (sessionStorage.getItem(KEY_STORAGE)) loadExperiments();
else showKeyForm();
