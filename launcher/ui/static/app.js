// launch ui: a little plain JavaScript over server-rendered pages. Text from the server is only ever
// set with textContent / append(string), never as HTML, so a log line holding <script> stays text.
"use strict";
(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const REFRESH_MS = 2000;

  // -- the jobs table's filters: a select applies at once; the text box on Enter or the button
  const filters = $("#filters");
  if (filters) {
    $$("select", filters).forEach((select) => select.addEventListener("change", () => filters.submit()));
  }

  // -- confirmation before a state-changing form (Cancel)
  $$("form[data-confirm]").forEach((form) => form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  }));

  // -- live states: every [data-job-id] element takes its job's state (colour) and its [data-field] texts
  const live = $("[data-states]");
  function apply(rows) {
    $$("[data-job-id]").forEach((element) => {
      const row = rows[element.dataset.jobId];
      if (!row) return;
      element.dataset.state = row.state;
      $$("[data-field]", element).forEach((field) => {
        const value = row[field.dataset.field];
        if (value !== undefined && field.textContent !== String(value)) field.textContent = value;
      });
      if (row.terminal) $$("form.cancel", element).forEach((form) => { form.hidden = true; });
    });
  }
  let since = null; // the server's clock at the previous answer: after it, only what is unfinished or changed
  async function refreshStates() {
    try {
      const url = live.dataset.states + (since === null ? "" : `&since=${encodeURIComponent(since)}`);
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const answer = await response.json();
        apply(answer.jobs);
        since = answer.now;
      }
    } catch (error) {
      // the server is restarting or gone: try again later
    }
    window.setTimeout(refreshStates, REFRESH_MS);
  }
  if (live) window.setTimeout(refreshStates, REFRESH_MS);

  // -- charts (Chart.js, vendored: /static/chart.umd.min.js)
  const charts = {};
  function chart(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas || !window.Chart) return null;
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options);
    charts[id] = new window.Chart(canvas, config);
    return charts[id];
  }
  function jsonBlock(id) {
    const block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }
  function stacked(id, labels, backends, key, title) {
    chart(id, {
      type: "bar",
      data: { labels, datasets: Object.keys(backends).map((name) => ({ label: name, data: backends[name][key] })) },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: title } } } },
    });
  }
  const usage = jsonBlock("usage-data");
  if (usage && usage.days.length) {
    stacked("gpu-hours-chart", usage.days, usage.backends, "gpu_hours", "GPU-hours");
    stacked("cost-chart", usage.days, usage.backends, "cost", "USD");
  }
  const plan = jsonBlock("plan-data");
  if (plan) {
    chart("plan-chart", {
      type: "bar",
      data: { labels: plan.labels, datasets: [{ label: "USD per hour, all nodes", data: plan.hourly }] },
      options: { indexAxis: "y", scales: { x: { beginAtZero: true } } },
    });
  }

  // -- a job's metrics, read from its logs by the server
  const metrics = $("#metrics");
  async function loadMetrics() {
    try {
      const response = await fetch(metrics.dataset.src, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const series = (await response.json()).series || {};
      const names = Object.keys(series);
      if (!names.length) return;
      metrics.hidden = false;
      chart("metrics-chart", {
        type: "line",
        data: { datasets: names.map((name) => ({ label: name, data: series[name].map(([x, y]) => ({ x, y })), pointRadius: 0 })) },
        options: { parsing: false, scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
      });
    } catch (error) {
      // no chart; the logs below still show the numbers
    }
  }
  if (metrics) loadMetrics();

  // -- a job's logs, live (server-sent events; the browser resumes after a reconnect with Last-Event-ID)
  const logs = $("#logs");
  if (logs && window.EventSource) {
    const status = $("#log-status");
    const pane = (node) => {
      let pre = $(`pre.log[data-node="${Number(node)}"]`, logs);
      if (!pre) {
        const heading = document.createElement("h3");
        heading.className = "node";
        heading.textContent = `node ${Number(node)}`;
        pre = document.createElement("pre");
        pre.className = "log";
        pre.dataset.node = String(Number(node));
        logs.append(heading, pre);
      }
      return pre;
    };
    const source = new EventSource(logs.dataset.src);
    let metricsTimer = null;
    source.addEventListener("open", () => { status.textContent = "streaming"; });
    source.addEventListener("lines", (event) => {
      const block = JSON.parse(event.data);
      const pre = pane(block.node);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(block.text + "\n");
      if (atEnd) pre.scrollTop = pre.scrollHeight;
      if (metrics && !metricsTimer) metricsTimer = window.setTimeout(() => { metricsTimer = null; loadMetrics(); }, 3000);
    });
    source.addEventListener("end", (event) => {
      source.close();
      const state = JSON.parse(event.data).state;
      status.textContent = `the job has ended (${state}); these are all its logs`;
      logs.dataset.ended = state;
      if (metrics) loadMetrics();
    });
    source.addEventListener("problem", (event) => {
      source.close();
      status.textContent = JSON.parse(event.data).message;
      logs.dataset.ended = "problem";
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) status.textContent = "reconnecting…";
    });
  }
})();
