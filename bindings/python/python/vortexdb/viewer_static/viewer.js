// vortexdb viewer page: calls the server's JSON routes; neuroglancer draws in the iframe.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { current: null, retrievalVersion: 0 };

async function api(path, params) {
  const qs = params ? "?" + new URLSearchParams(params).toString() : "";
  const r = await fetch("/vortex/api/" + path + qs, { cache: "no-store" });
  let body;
  try { body = await r.json(); } catch (e) { body = { error: r.status + " " + r.statusText }; }
  if (!r.ok) { const err = new Error(body.error || r.statusText); err.body = body; err.status = r.status; throw err; }
  return body;
}

function say(text, kind) {
  const m = $("msg");
  m.textContent = text;
  m.className = kind || "";
}

function failure(e) {
  let text = e.message;
  const s = e.body && e.body.suggestions;
  if (s && Object.keys(s).length) {
    text += " Suggestions: " + Object.entries(s).map(([g, c]) => g + " \u2192 " + c.join(", ")).join("; ");
  }
  say((e.status ? "[" + e.status + "] " : "") + text, "error");
}

// Replace the options of a <select> by one per name (value and text the name).
function fillOptions(select, names) {
  select.innerHTML = "";
  for (const name of names || []) {
    const o = document.createElement("option");
    o.value = name;
    o.textContent = name;
    select.appendChild(o);
  }
}

function showInfo(info) {
  state.current = info.current;
  $("store").textContent = info.store;
  const sel = $("sample");
  sel.innerHTML = "";
  for (const s of info.samples) {
    const o = document.createElement("option");
    o.value = s.id;
    o.textContent = s.id + " (" + s.kind + ", " + s.patches + " patches" + (s.image ? "" : ", no image") + ")";
    sel.appendChild(o);
  }
  if (info.current) sel.value = info.current;
  const m = $("method");
  const chosen = m.value || (info.predicted ? info.predicted[1] : "");
  fillOptions(m, info.methods);
  if (chosen && (info.methods || []).includes(chosen)) m.value = chosen;
  const ss = $("spotset");
  fillOptions(ss, info.spot_sets);
  if (info.spot_set) ss.value = info.spot_set;
  $("spots-form").hidden = !(info.spot_sets || []).length;
  $("notes").textContent = (info.notes || []).join(" ");
  if (info.genes && info.genes.length && !$("genes").value) $("genes").value = info.genes.join(",");
  markCurrent();
}

function markCurrent() {
  for (const tr of document.querySelectorAll("#triage tbody tr")) {
    tr.classList.toggle("current", tr.dataset.sample === state.current);
  }
}

function showTriage(rows) {
  const tb = document.querySelector("#triage tbody");
  tb.innerHTML = "";
  rows.forEach((r, i) => {
    const tr = document.createElement("tr");
    tr.dataset.sample = r.sample;
    const frac = r.fraction_above === undefined ? "-" : (100 * r.fraction_above).toFixed(1) + "%";
    const mx = r.max_score === undefined ? "-" : r.max_score.toFixed(3);
    for (const v of [i + 1, r.sample, frac, mx]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => openSample(r.sample));
    tb.appendChild(tr);
  });
  markCurrent();
}

async function openSample(id) {
  say("opening " + id + "\u2026", "busy");
  try {
    const info = await api("open", { sample: id });
    showInfo(info);
    say("showing " + id);
  } catch (e) { failure(e); }
}

async function runQuery(ev) {
  if (ev) ev.preventDefault();
  const genes = $("genes").value.trim();
  say("querying " + genes + "\u2026", "busy");
  const params = { genes: genes };
  if (state.current) params.sample = state.current;
  try {
    const r = await api("query", params);
    showTriage(r.triage);
    say("heatmap of " + r.genes.join(", ") + " on " + r.sample + (r.cached ? " (cached)" : "") +
        " in " + r.elapsed_ms + " ms");
    document.body.dataset.lastQuery = r.genes.join(",");
  } catch (e) { failure(e); }
}

async function runDomains(ev) {
  if (ev) ev.preventDefault();
  const k = $("k").value.trim();
  say("computing " + k + " domains\u2026", "busy");
  const params = { k: k };
  if (state.current) params.sample = state.current;
  try {
    const r = await api("domains", params);
    say(r.k + " domains on " + r.sample);
  } catch (e) { failure(e); }
}

async function runPredict(ev) {
  if (ev) ev.preventDefault();
  const gene = $("pgene").value.trim();
  const params = { gene: gene, method: $("method").value };
  if (state.current) params.sample = state.current;
  say("predicting " + gene + "\u2026", "busy");
  try {
    const r = await api("predict", params);
    say("predicted " + r.gene + " (" + r.method + ") on " + r.sample + ": " + r.patches + " patches, " +
        r.min.toFixed(2) + " to " + r.max.toFixed(2) + ", in " + r.elapsed_ms + " ms");
    document.body.dataset.lastPrediction = r.gene;
  } catch (e) { failure(e); }
}

async function runSpots(ev) {
  if (ev) ev.preventDefault();
  const gene = $("sgene").value.trim();
  const params = { set: $("spotset").value };
  if (gene) params.gene = gene;
  if (state.current) params.sample = state.current;
  try {
    const r = await api("spots", params);
    say(r.spots + " spots of " + r.spot_set + " on " + r.sample + (r.gene ? " coloured by " + r.gene +
        " (yellow = " + r.max.toFixed(2) + ")" : ""));
    document.body.dataset.spotGene = r.gene;
  } catch (e) { failure(e); }
}

function showRetrieval(r) {
  const ol = $("hits");
  ol.innerHTML = "";
  if (r.error) { say("retrieval failed: " + r.error, "error"); return; }
  $("retrieval-query").textContent = r.query || "";
  for (const h of r.hits) {
    const li = document.createElement("li");
    li.textContent = h.sample + " #" + h.id + " [" + h.origin.join(", ") + "] " + h.similarity.toFixed(3);
    li.className = h.sample === r.sample ? "here" : "elsewhere";
    if (h.sample !== r.sample) li.addEventListener("click", () => openSample(h.sample));
    ol.appendChild(li);
  }
  const here = r.hits.filter((h) => h.sample === r.sample).length;
  say(r.hits.length + " similar patches (" + here + " in " + r.sample + ", marked)");
}

async function pollRetrieval() {
  try {
    const r = await api("retrieval");
    if (r.version !== state.retrievalVersion) {
      state.retrievalVersion = r.version;
      if (r.version > 0) showRetrieval(r);
    }
  } catch (e) { /* the server is gone: stop quietly */ return; }
  setTimeout(pollRetrieval, 700);
}

async function main() {
  $("gene-form").addEventListener("submit", runQuery);
  $("domains-form").addEventListener("submit", runDomains);
  $("predict-form").addEventListener("submit", runPredict);
  $("spots-form").addEventListener("submit", runSpots);
  $("sample").addEventListener("change", (e) => openSample(e.target.value));
  try {
    const info = await api("info");
    showInfo(info);
    $("ng").src = info.neuroglancer;
    if (!info.samples.length) say("this store holds no samples", "error");
  } catch (e) { failure(e); }
  pollRetrieval();
}

main();
