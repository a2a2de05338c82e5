/* riskstream dashboard: live feed (SSE), alert queue, alert drawer with analyst review, charts.
   Vanilla JS, no dependencies; talks only to this server's own API. All text from the API is
   escaped before it reaches the DOM (transaction fields come from clients). */
(function () {
  "use strict";
  const C = window.RSCharts;
  const esc = C.esc;
  const CONFIG = JSON.parse(document.getElementById("rs-config").textContent);
  /** Rows kept in the live feed: the DOM stays bounded whatever the traffic. */
  const FEED_ROWS = 200;
  const QUEUE_REFRESH_MS = 4000;
  const SUMMARY_REFRESH_MS = 5000;
  /** Outcome labels arrive over days: the alert-quality table needs no faster refresh. */
  const QUALITY_REFRESH_MS = 60000;
  const COLORS = { allow: "#4ade80", review: "#f59e0b", block: "#ef4444", accent: "#38bdf8", violet: "#a78bfa" };
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- formatting helpers
  const moneyFmt = new Map();
  function money(amount, currency) {
    if (amount == null) return "–";
    let f = moneyFmt.get(currency);
    if (!f) {
      try {
        f = new Intl.NumberFormat("en-US", { style: "currency", currency: currency || "XXX", maximumFractionDigits: 2 });
      } catch (e) {
        f = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
      }
      moneyFmt.set(currency, f);
    }
    return f.format(amount);
  }
  // Event time on the simulated clock runs days per minute: show the date with the time.
  const hms = (ts) => (ts ? new Date(ts * 1000).toISOString().slice(5, 19).replace("T", " ") : "–");
  const hm = (ts) => (ts ? new Date(ts * 1000).toISOString().slice(5, 16).replace("T", " ") : "–");
  const dateTime = (ts) => (ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");
  const score4 = (s) => (s == null ? "–" : Number(s).toFixed(4));
  const pct = (v) => (v == null ? "–" : (100 * v).toFixed(v < 0.1 ? 2 : 1) + "%");
  const place = (city, country) => (city ? `${city}, ${country}` : country || "online");
  const badge = (kind, text) => `<span class="badge ${esc(kind)}">${esc(text || kind)}</span>`;
  const scoreCell = (s) => `<span class="score"><i><b style="width:${Math.round(Math.min(1, Math.max(0, s)) * 100)}%"></b></i>${score4(s)}</span>`;
  const STATUS_TEXT = { open: "open", confirmed: "fraud", dismissed: "legit" };

  // ---------------------------------------------------------------- API
  async function api(path, options) {
    const resp = await fetch(path, Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, options || {}));
    if (resp.status === 401) { showAuth(); throw new Error("API key required"); }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const d = body.detail;
      const msg = Array.isArray(d) ? d.map((e) => `${(e.loc || []).slice(-1)[0]}: ${e.msg}`).join("; ") : d || resp.statusText;
      throw new Error(msg);
    }
    return body;
  }

  function showAuth() {
    if (!CONFIG.auth_required) return;
    $("auth").hidden = false;
  }
  $("auth-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    // The key goes in a same-site cookie so the EventSource (which cannot set headers) sends it.
    document.cookie = `riskstream_api_key=${encodeURIComponent($("auth-key").value)}; path=/; SameSite=Strict`;
    location.reload();
  });

  // ---------------------------------------------------------------- analyst name
  const analyst = $("analyst");
  analyst.value = localStorage.getItem("rs-analyst") || "";
  analyst.addEventListener("change", () => localStorage.setItem("rs-analyst", analyst.value.trim()));

  // ---------------------------------------------------------------- live feed
  const feed = {
    source: null, paused: false, pending: [], received: 0, rate: 0, marks: [],
    body: $("feed-body"), filters: { decision: "", user_id: "", min_score: "" },
  };

  function setLive(state, text) {
    $("live").dataset.state = state;
    $("live-text").textContent = text || state;
  }

  function feedRow(r, fresh) {
    const flagged = r.decision !== "allow";
    const why = flagged && r.reasons && r.reasons.length ? ` title="${esc(r.reasons.join(", "))}"` : "";
    return `<tr class="d-${esc(r.decision)}${fresh ? " fresh" : ""}${flagged ? " flagged" : ""}" data-tx="${esc(r.transaction_id)}"${why}>` +
      `<td class="mono">${hms(r.timestamp)}</td><td class="mono">${esc(r.user_id)}</td>` +
      `<td class="r">${esc(money(r.amount, r.currency))}</td>` +
      `<td title="${esc(r.channel || "")}">${esc(r.merchant_category || "–")}</td>` +
      `<td>${esc(place(r.city, r.country))}</td>` +
      `<td>${scoreCell(r.score)}</td><td>${badge(r.decision)}</td></tr>`;
  }

  function renderFeed(rows) {
    if (!rows.length) return;
    const newest = rows.slice(-FEED_ROWS).reverse();
    const empty = feed.body.querySelector(".empty");
    if (empty) empty.parentElement.remove();
    // New rows flash briefly when they arrive a few at a time; at full speed that is noise.
    const fresh = newest.length <= 10;
    feed.body.insertAdjacentHTML("afterbegin", newest.map((r) => feedRow(r, fresh)).join(""));
    while (feed.body.childElementCount > FEED_ROWS) feed.body.lastElementChild.remove();
  }

  function onRows(rows) {
    feed.received += rows.length;
    feed.marks.push([performance.now(), rows.length]);
    if (feed.paused) {
      feed.pending = feed.pending.concat(rows).slice(-FEED_ROWS);
      return;
    }
    renderFeed(rows);
  }

  function feedStats() {
    const now = performance.now();
    feed.marks = feed.marks.filter((m) => now - m[0] < 5000);
    const n = feed.marks.reduce((a, m) => a + m[1], 0);
    const paused = feed.paused ? ` · ${feed.pending.length} waiting` : "";
    $("feed-stats").textContent = `${feed.body.querySelectorAll("tr[data-tx]").length} shown · ${(n / 5).toFixed(0)} rows/s · ${feed.received.toLocaleString()} received${paused}`;
  }

  function connectFeed() {
    if (feed.source) feed.source.close();
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(feed.filters)) if (v !== "") q.set(k, v);
    const es = new EventSource("/stream/transactions?" + q.toString());
    feed.source = es;
    es.addEventListener("open", () => setLive(feed.paused ? "paused" : "live"));
    es.addEventListener("transactions", (ev) => onRows(JSON.parse(ev.data)));
    es.addEventListener("bye", () => {
      // The server is stopping: close, say so, and try again later (it may be restarting).
      es.close();
      setLive("stopped", "server stopped");
      setTimeout(() => { if (feed.source === es) connectFeed(); }, 5000);
    });
    es.addEventListener("error", () => { if (es.readyState !== EventSource.CLOSED) setLive("reconnecting"); });
  }

  function resetFeed() {
    feed.body.innerHTML = `<tr><td colspan="7" class="empty">waiting for transactions…</td></tr>`;
    feed.pending = [];
    connectFeed();
  }

  let feedTimer = null;
  function feedFilterChanged() {
    feed.filters = {
      decision: $("feed-decision").value,
      user_id: $("feed-user").value.trim(),
      min_score: $("feed-min").value.trim(),
    };
    clearTimeout(feedTimer);
    feedTimer = setTimeout(resetFeed, 250); // debounce typing
  }
  $("feed-decision").addEventListener("change", feedFilterChanged);
  $("feed-user").addEventListener("input", feedFilterChanged);
  $("feed-min").addEventListener("input", feedFilterChanged);
  $("feed-pause").addEventListener("click", () => {
    feed.paused = !feed.paused;
    const btn = $("feed-pause");
    btn.textContent = feed.paused ? "Resume" : "Pause";
    btn.classList.toggle("on", feed.paused);
    if (!feed.paused) { renderFeed(feed.pending); feed.pending = []; }
    setLive(feed.paused ? "paused" : "live");
  });
  feed.body.addEventListener("click", async (ev) => {
    const tr = ev.target.closest("tr.flagged");
    if (!tr) return;
    try {
      const found = await api("/dashboard/api/alerts?" + new URLSearchParams({ transaction_id: tr.dataset.tx, limit: "1" }));
      if (found.items.length) openAlert(found.items[0].id);
    } catch (e) { /* the alert may not be written yet */ }
  });

  // ---------------------------------------------------------------- alert queue
  const queue = { body: $("queue-body"), selected: null, last: "", loading: false, timer: null };

  function queueParams() {
    const [sort, order] = $("q-sort").value.split(":");
    const q = { status: $("q-status").value, sort, order, limit: "100" };
    if ($("q-decision").value) q.decision = $("q-decision").value;
    if ($("q-reason").value) q.reason = $("q-reason").value;
    if ($("q-user").value.trim()) q.user_id = $("q-user").value.trim();
    return new URLSearchParams(q);
  }

  function queueRow(a) {
    const codes = a.reasons || [];
    const first = codes.length ? `<span class="code">${esc(codes[0].code)}</span>${codes.length > 1 ? `<span class="more">+${codes.length - 1}</span>` : ""}` : `<span class="muted">score only</span>`;
    const sel = a.id === queue.selected ? " selected" : "";
    return `<tr class="d-${esc(a.decision)}${sel}" data-id="${a.id}" title="${esc(codes.map((r) => r.text).join("\n"))}">` +
      `<td class="mono">${hm(a.timestamp)}</td><td class="mono">${esc(a.user_id)}</td>` +
      `<td class="r">${esc(C.fmtNum(a.amount))}</td><td class="num-score">${score4(a.score)}</td>` +
      `<td>${badge(a.decision)}</td><td class="why">${first}</td><td>${badge(a.status, STATUS_TEXT[a.status])}</td></tr>`;
  }

  async function loadQueue(force) {
    if (queue.loading) return;
    queue.loading = true;
    try {
      const data = await api("/dashboard/api/alerts?" + queueParams());
      const key = JSON.stringify(data.items.map((a) => [a.id, a.status])) + queue.selected;
      if (force || key !== queue.last) {
        queue.last = key;
        queue.body.innerHTML = data.items.length ? data.items.map(queueRow).join("") : `<tr><td colspan="7" class="empty">no alerts match</td></tr>`;
      }
      const n = data.items.length;
      $("q-stats").textContent = `${n}${n >= 100 ? "+" : ""} alert${n === 1 ? "" : "s"}`;
    } catch (e) {
      $("q-stats").textContent = e.message;
    } finally {
      queue.loading = false;
    }
  }
  for (const id of ["q-status", "q-decision", "q-reason", "q-sort"]) $(id).addEventListener("change", () => loadQueue(true));
  let qTimer = null;
  $("q-user").addEventListener("input", () => { clearTimeout(qTimer); qTimer = setTimeout(() => loadQueue(true), 300); });
  queue.body.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-id]");
    if (tr) openAlert(Number(tr.dataset.id));
  });

  // ---------------------------------------------------------------- alert drawer
  const drawer = $("drawer"), backdrop = $("backdrop");

  function closeDrawer() {
    drawer.hidden = true;
    backdrop.hidden = true;
    queue.selected = null;
    loadQueue(true);
  }
  backdrop.addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && !drawer.hidden) closeDrawer(); });

  function detectorsPanel(det, alert) {
    const rows = (det.detectors || []).map((d) =>
      `<tr><td>${esc(d.name.replace(/_/g, " "))}</td><td>${esc(d.weight)}</td><td class="mono">${esc(d.raw)}</td>` +
      `<td><span class="meter"><b style="width:${Math.round(d.score * 100)}%"></b></span> ${score4(d.score)}</td></tr>`).join("");
    const combined = det.combined ? det.combined.score : alert.score;
    return `<table class="det"><thead><tr><th>Detector</th><th>Weight</th><th>Raw score</th><th>Calibrated</th></tr></thead><tbody>${rows}` +
      `<tr class="total"><td>${(det.detectors || []).length > 1 ? "Ensemble" : "Final"} score</td><td></td><td></td>` +
      `<td><span class="meter"><b style="width:${Math.round(combined * 100)}%"></b></span> ${score4(combined)}</td></tr></tbody></table>` +
      `<div class="note">${esc(det.note || "")}. Calibrated = share of training traffic less anomalous; review ≥ ${CONFIG.thresholds.review}, block ≥ ${CONFIG.thresholds.block}.</div>`;
  }

  function profilePanel(user) {
    if (!user) return `<div class="muted">no profile for this user in the state store</div>`;
    const p = user.profile;
    const loc = p.last_location ? `${p.last_location.lat.toFixed(2)}, ${p.last_location.lon.toFixed(2)}` : "–";
    const hours = (p.usual_hours_utc || []).map((h) => `${String(h).padStart(2, "0")}h`).join(", ") || "–";
    return `<dl class="kv"><dt>Usual amount</dt><dd>${esc(C.fmtNum(p.usual_amount))}</dd>` +
      `<dt>Transactions seen</dt><dd>${esc(p.transactions_seen)}</dd>` +
      `<dt>Usual hours</dt><dd>${esc(hours)} UTC</dd>` +
      `<dt>Known devices</dt><dd>${esc(p.known_devices)}</dd>` +
      `<dt>Places</dt><dd>${esc(p.known_countries)} countries · ${esc(p.known_merchants)} merchants · last at ${esc(loc)}</dd>` +
      `<dt>Last seen</dt><dd>${esc(p.last_seen ? p.last_seen.replace("T", " ").slice(0, 19) : "–")}</dd></dl>`;
  }

  function historyList(user, txId) {
    if (!user || !user.recent.length) return "";
    return `<table class="data" style="margin-top:8px"><thead><tr><th>Time (UTC)</th><th class="r">Amount</th><th>Category</th><th>Location</th><th>Score</th><th></th></tr></thead><tbody>` +
      user.recent.slice(0, 10).map((r) =>
        `<tr class="d-${esc(r.decision)}${r.transaction_id === txId ? " selected" : ""}"><td class="mono">${esc(dateTime(r.timestamp).slice(5, 16))}</td>` +
        `<td class="r">${esc(money(r.amount, r.currency))}</td><td>${esc(r.merchant_category || "–")}</td>` +
        `<td>${esc(place(r.city, r.country))}</td><td>${score4(r.score)}</td><td>${badge(r.decision)}</td></tr>`).join("") +
      `</tbody></table>`;
  }

  function labelsList(labels) {
    if (!labels.length) return `<div class="note">not reviewed yet</div>`;
    return `<ul class="labels" id="label-list">` + labels.slice().reverse().map((l) =>
      `<li>${badge(l.verdict === "fraud" ? "confirmed" : "dismissed", l.verdict)} by <b>${esc(l.analyst || "anonymous")}</b> · ${esc(dateTime(l.created_at))}${l.note ? ` — “${esc(l.note)}”` : ""}</li>`).join("") + `</ul>`;
  }

  function renderDrawer(a, user) {
    const tx = a.transaction || {};
    const reasons = (a.reasons || []).map((r) =>
      `<li><span class="text">${esc(r.text)}</span><span class="code">${esc(r.code)}</span><span class="val">${esc(r.feature)} = ${esc(r.value)}</span></li>`).join("");
    $("drawer-body").innerHTML =
      `<h2>Alert #${a.id} ${badge(a.decision)} <span id="drawer-status">${badge(a.status, STATUS_TEXT[a.status])}</span>` +
      `<button class="close" type="button" aria-label="close" id="drawer-close">×</button></h2>` +
      `<div class="muted mono">${esc(a.transaction_id)} · ${esc(dateTime(a.timestamp))}</div>` +
      `<section class="facts"><div class="fact"><span>Amount</span><b>${esc(money(a.amount, tx.currency))}</b></div>` +
      `<div class="fact"><span>Score</span><b>${score4(a.score)}</b></div>` +
      `<div class="fact"><span>User</span><b class="mono">${esc(a.user_id)}</b></div></section>` +
      `<section><h3>Transaction</h3><dl class="kv">` +
      `<dt>Merchant</dt><dd>${esc(tx.merchant_id || "–")} · ${esc(tx.merchant_category || "–")}</dd>` +
      `<dt>Location</dt><dd>${esc(place(tx.city, tx.country))}${tx.lat != null ? ` (${Number(tx.lat).toFixed(2)}, ${Number(tx.lon).toFixed(2)})` : ""}</dd>` +
      `<dt>Channel · device</dt><dd>${esc(tx.channel || "–")} · <span class="mono">${esc(tx.device_id || "–")}</span></dd>` +
      `<dt>Model</dt><dd class="mono">${esc(a.model_version)}</dd></dl></section>` +
      `<section><h3>Why it fired</h3>${reasons ? `<ul class="reasons" id="reason-list">${reasons}</ul>` : `<div class="muted" id="reason-list">no rule fired: the score alone crossed the threshold</div>`}</section>` +
      `<section><h3>Detectors</h3>${detectorsPanel(a.detectors || {}, a)}</section>` +
      `<section><h3>Analyst review</h3><div class="review-box">` +
      `<textarea id="label-note" maxlength="2000" placeholder="note (optional): what you checked, who you called…"></textarea>` +
      `<div class="row"><button type="button" class="btn fraud" id="mark-fraud">Mark fraud</button>` +
      `<button type="button" class="btn legit" id="mark-legit">Mark legitimate</button>` +
      `<span class="note" id="label-msg">as ${esc(analyst.value.trim() || "anonymous")} (set your name at the top)</span></div>` +
      `<div id="label-history">${labelsList(a.labels || [])}</div></div></section>` +
      `<section><h3>User profile</h3>${profilePanel(user)}</section>` +
      `<section><h3>Recent history</h3><div class="timeline" id="user-timeline"></div>${historyList(user, a.transaction_id)}</section>`;
    $("drawer-close").addEventListener("click", closeDrawer);
    $("mark-fraud").addEventListener("click", () => submitLabel(a.id, "fraud"));
    $("mark-legit").addEventListener("click", () => submitLabel(a.id, "legitimate"));
    const points = (user ? user.recent : []).map((r) => ({
      t: r.timestamp, amount: r.amount, decision: r.decision, current: r.transaction_id === a.transaction_id,
      title: `${dateTime(r.timestamp)} · ${money(r.amount, r.currency)} · ${r.decision}`,
    }));
    if (!points.some((p) => p.current) && a.timestamp) points.push({ t: a.timestamp, amount: a.amount, decision: a.decision, current: true, title: "this alert" });
    C.timeline($("user-timeline"), { points, colors: COLORS });
  }

  async function openAlert(id) {
    queue.selected = id;
    for (const tr of queue.body.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const row = queue.body.querySelector(`tr[data-id="${id}"]`);
    if (row) row.classList.add("selected");
    drawer.hidden = false;
    backdrop.hidden = false;
    $("drawer-body").innerHTML = `<div class="muted">loading alert #${id}…</div>`;
    try {
      const a = await api(`/alerts/${id}`);
      let user = null;
      try { user = await api(`/users/${encodeURIComponent(a.user_id)}?recent=40`); } catch (e) { user = null; }
      if (queue.selected !== id) return; // another alert was opened meanwhile
      renderDrawer(a, user);
      drawer.focus();
    } catch (e) {
      $("drawer-body").innerHTML = `<div class="error">${esc(e.message)}</div>`;
    }
  }

  async function submitLabel(id, verdict) {
    const msg = $("label-msg");
    const buttons = [$("mark-fraud"), $("mark-legit")];
    buttons.forEach((b) => (b.disabled = true));
    const body = { verdict };
    if (analyst.value.trim()) body.analyst = analyst.value.trim();
    if ($("label-note").value.trim()) body.note = $("label-note").value.trim();
    try {
      const a = await api(`/alerts/${id}/label`, {
        method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body),
      });
      $("drawer-status").innerHTML = badge(a.status, STATUS_TEXT[a.status]);
      $("label-history").innerHTML = labelsList(a.labels);
      $("label-note").value = "";
      msg.textContent = `saved: ${verdict}`;
      msg.className = "note";
      loadQueue(true);
      loadSummary();
    } catch (e) {
      msg.textContent = e.message;
      msg.className = "note error";
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  // ---------------------------------------------------------------- summary: KPIs and charts
  let summary = null;
  let locationBy = "country";

  function drawCharts() {
    if (!summary) return;
    const s = summary;
    const pts = s.throughput;
    C.timeSeries($("chart-throughput"), {
      series: [
        { name: "tx/s", color: COLORS.accent, area: true, values: pts.map((p) => [p.t, p.tx_per_s]) },
        { name: "anomaly rate", color: COLORS.review, axis: "right", values: pts.map((p) => [p.t, p.count ? 100 * p.anomaly_rate : null]) },
      ],
      rightFormat: (v) => (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + "%",
    });
    C.timeSeries($("chart-latency"), {
      series: [
        { name: "p50", color: COLORS.accent, values: pts.map((p) => [p.t, p.p50_ms]) },
        { name: "p99", color: COLORS.violet, values: pts.map((p) => [p.t, p.p99_ms]) },
      ],
      leftFormat: (v) => C.fmtNum(v),
    });
    const sc = s.scores, n = sc.counts.length, step = sc.x_edges[1] - sc.x_edges[0];
    const at = (p) => -Math.log10(Math.max(1 - p, 1e-9)) / step;
    const ticks = [];
    for (let d = 0; d <= sc.x_edges[n]; d++) ticks.push({ at: d / step, label: d === 0 ? "0" : (1 - Math.pow(10, -d)).toFixed(d) });
    C.histogram($("chart-scores"), {
      counts: sc.counts, ticks,
      markers: [
        { at: at(sc.review), color: COLORS.review, label: `review ≥ ${sc.review}` },
        { at: at(sc.block), color: COLORS.block, label: `block ≥ ${sc.block}` },
      ],
      colorOf: (i) => (sc.p_edges[i] >= sc.block ? COLORS.block : sc.p_edges[i] >= sc.review ? COLORS.review : "#38bdf8"),
      binLabel: (i) => `score ${sc.p_edges[i]}–${sc.p_edges[i + 1]}`,
    });
    const bars = (rows, emptyLabel) => rows.map((r) => ({
      label: r.key || emptyLabel, value: r.amount,
      note: `${C.fmtCount(r.count)} tx${r.anomalies ? ` · ${C.fmtCount(r.anomalies)} flagged` : ""}`,
      color: r.anomalies ? "#60a5fa" : "#38bdf8",
    }));
    C.hbars($("chart-location"), { items: bars(locationBy === "city" ? s.by_city : s.by_country, "online") });
    C.hbars($("chart-category"), { items: bars(s.by_category, "(none)") });
    C.hbars($("chart-reasons"), {
      items: s.top_reasons.map((r) => ({ label: r.code, value: r.count, color: COLORS.review })),
      format: (v) => String(v), empty: "no alerts in the window",
    });
  }

  function updateKpis() {
    const s = summary, t = s.totals;
    $("kpi-tps").textContent = C.fmtNum(t.tx_per_s);  // "0" until a 5 s bucket completes
    $("kpi-rate").textContent = pct(t.anomaly_rate);
    $("kpi-review").textContent = t.review.toLocaleString();
    $("kpi-block").textContent = t.block.toLocaleString();
    $("kpi-open").textContent = s.alerts.open.toLocaleString();
    $("kpi-reviewed").textContent = `${s.alerts.confirmed} fraud · ${s.alerts.dismissed} legit`;
    $("kpi-latency").textContent = s.latency_ms.p50 == null ? "–" : `${C.fmtNum(s.latency_ms.p50)} / ${C.fmtNum(s.latency_ms.p99)}`;
    $("kpi-model").textContent = s.model.version;
    $("model-version").textContent = s.model.version;
    const det = (s.model.detectors || []).map((d) => `${d.name.replace(/_/g, " ")} (weight ${d.weight})`).join(" + ");
    $("kpi-detectors").textContent = det ? "detectors: " + det : s.model.trained_on || "";
  }

  async function loadSummary() {
    try {
      summary = await api("/dashboard/api/summary");
      updateKpis();
      drawCharts();
    } catch (e) { /* next refresh will retry */ }
  }

  // ---------------------------------------------------------------- alert quality (labels)
  async function loadQuality() {
    try {
      const q = await api("/dashboard/api/quality");
      const t = q.totals;
      const row = (d, label) => `<tr${label ? ' class="total"' : ""}><td>${esc(label || d.day)}</td>` +
        [d.alerts, d.resolved].map((v) => `<td class="num">${v.toLocaleString()}</td>`).join("") +
        `<td class="num">${pct(d.precision)}</td>` +
        [d.frauds_reported, d.frauds_alerted, d.frauds_missed].map((v) => `<td class="num">${v.toLocaleString()}</td>`).join("") +
        `<td class="num">${pct(d.recall)}</td></tr>`;
      $("quality-body").innerHTML = q.days.length
        ? q.days.slice().reverse().map((d) => row(d)).join("") + row(t, `${q.days.length} days`)
        : '<tr><td colspan="8" class="empty">no outcome labels yet</td></tr>';
    } catch (e) { /* next refresh will retry */ }
  }

  for (const b of document.querySelectorAll(".seg button")) {
    b.addEventListener("click", () => {
      locationBy = b.dataset.by;
      for (const o of document.querySelectorAll(".seg button")) o.classList.toggle("on", o === b);
      drawCharts();
    });
  }
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawCharts, 150); });

  // ---------------------------------------------------------------- start
  resetFeed();
  loadQueue(true);
  loadSummary();
  loadQuality();
  setInterval(feedStats, 1000);
  setInterval(() => { if (!document.hidden) loadQuality(); }, QUALITY_REFRESH_MS);
  setInterval(() => { if (!document.hidden) loadQueue(false); }, QUEUE_REFRESH_MS);
  setInterval(() => { if (!document.hidden) loadSummary(); }, SUMMARY_REFRESH_MS);
})();
