// The dashboard's own script: charts (uPlot: Overview, Replay), the Playground's stream, copy
// and confirm.
// No inline script anywhere (the Content-Security-Policy forbids it): pages carry data in
// data-* attributes, and everything from the server is written with textContent, never HTML.
"use strict";

(function () {
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // --- charts -----------------------------------------------------------------------------
  var PLOTS = {
    rps: { series: [["requests/s", "rps", 1]] },
    error_rate: { series: [["error rate", "error_rate", 100]] },
    latency: { series: [["p50", "latency_p50", 1000], ["p95", "latency_p95", 1000]] },
    ttft: { series: [["p50", "ttft_p50", 1000], ["p95", "ttft_p95", 1000]] },
    tokens: { series: [["tokens", "tokens", 1]] },
    cost_usd: { series: [["USD", "cost_usd", 1]] },
    // the Replay page: baseline and proposal side by side
    replay_cost: { series: [["baseline", "cost_baseline", 1], ["proposal", "cost_proposal", 1]] },
    replay_latency: { series: [["baseline p95", "p95_baseline", 1000], ["proposal p95", "p95_proposal", 1000]] },
  };

  // Axis numbers that stay readable from dollars to fractions of a cent.
  function tick(v) {
    if (v === 0) return "0";
    if (Math.abs(v) < 1) return Number(v.toPrecision(2)).toString();
    return v.toLocaleString(undefined, { maximumFractionDigits: 1 });
  }

  function scaled(values, factor) {
    return values.map(function (v) { return v === null ? null : v * factor; });
  }

  function drawCharts() {
    var holder = document.getElementById("charts");
    if (!holder || !window.uPlot) return;
    var data = JSON.parse(holder.dataset.series);
    var colors = [css("--accent"), css("--accent-2")];
    var axis = { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") } };
    holder.querySelectorAll("[data-chart]").forEach(function (el) {
      var plot = PLOTS[el.dataset.chart];
      var unit = el.dataset.unit;
      var columns = [data.times];
      var series = [{}];
      plot.series.forEach(function (s, i) {
        columns.push(scaled(data[s[1]], s[2]));
        series.push({ label: s[0] + " (" + unit + ")", stroke: colors[i], width: 2,
                      points: { show: true, size: 4 }, spanGaps: false });
      });
      var chart = new uPlot({
        width: Math.max(260, el.clientWidth),
        height: 180,
        series: series,
        axes: [Object.assign({}, axis), Object.assign({
          label: unit, size: 64,
          values: function (u, splits) { return splits.map(tick); },
        }, axis)],
        legend: { show: true },
      }, columns, el);
      // how many points carry data: what a reader (and the browser test) can see plotted
      el.dataset.points = String(columns[1].filter(function (v) { return v !== null && v > 0; }).length);
      window.addEventListener("resize", function () {
        chart.setSize({ width: Math.max(260, el.clientWidth), height: 180 });
      });
    });
  }

  // --- copy and confirm -------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.dataset.copy);
    field.select();
    if (navigator.clipboard) {
      navigator.clipboard.writeText(field.value).then(function () { button.textContent = "Copied"; },
                                                      function () { button.textContent = "Select and copy"; });
    }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  // --- the Playground ---------------------------------------------------------------------
  function fact(name, text) {
    document.querySelector('[data-fact="' + name + '"]').textContent = text;
  }

  function finish(data) {
    var usage = data.usage || {};
    fact("vendor", data.vendor || "–");
    fact("model", data.model || "–");
    fact("tokens", (usage.prompt_tokens || 0) + " / " + (usage.completion_tokens || 0));
    fact("cost", data.cost_usd === null || data.cost_usd === undefined ? "–" : "$" + Number(data.cost_usd).toFixed(6));
    fact("latency", Math.round((data.latency_s || 0) * 1000) + " ms");
    document.getElementById("answer-facts").hidden = false;
    var routing = data.routing;
    if (routing) {
      fact("routing", "rule: " + (routing.rule || "none matched") + " · strategy: " + routing.strategy +
           (routing.group ? " · group: " + routing.group : "") + " — " + routing.reason);
      var list = document.querySelector('[data-fact="candidates"]');
      list.replaceChildren();
      routing.candidates.forEach(function (c) {
        var item = document.createElement("li");
        item.textContent = c.deployment + (c.detail ? " — " + c.detail : "");
        list.appendChild(item);
      });
      document.getElementById("answer-routing").hidden = false;
    }
  }

  function linkRequest(id) {
    var link = document.createElement("a");
    link.href = "/ui/requests/" + encodeURIComponent(id);
    link.textContent = id;
    document.querySelector('[data-fact="request"]').replaceChildren(link);
  }

  function showError(message) {
    var el = document.getElementById("answer-error");
    el.textContent = message;
    el.hidden = false;
  }

  async function play(event) {
    event.preventDefault();
    var form = event.target;
    var answer = document.getElementById("answer");
    answer.textContent = "";
    document.getElementById("answer-error").hidden = true;
    document.getElementById("answer-facts").hidden = true;
    document.getElementById("answer-routing").hidden = true;
    form.querySelector("button").disabled = true;
    try {
      var response = await fetch("/ui/playground/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf,
                   "Accept": "text/event-stream" },
        body: JSON.stringify({ model: form.model.value, prompt: form.prompt.value,
                              max_tokens: Number(form.max_tokens.value) || 256 }),
      });
      if (!response.ok) {
        var body = await response.json().catch(function () { return {}; });
        var error = body.error;
        showError((error && (error.message || error)) || "the gateway answered " + response.status);
        return;
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      for (;;) {
        var step = await reader.read();
        if (step.done) break;
        buffer += decoder.decode(step.value, { stream: true });
        var events = buffer.split("\n\n");
        buffer = events.pop();
        events.forEach(function (raw) {
          var isError = raw.indexOf("event: error") === 0;
          var isLedger = raw.indexOf("event: ledger") === 0;
          var line = raw.split("\n").filter(function (l) { return l.indexOf("data: ") === 0; })[0];
          if (!line) return;
          var payload = line.slice(6);
          if (payload === "[DONE]") return;
          var data = JSON.parse(payload);
          if (isError) { showError(data.error ? data.error.message : "the stream failed"); return; }
          if (isLedger) { linkRequest(data.request_id); return; }
          answer.textContent += data.delta || "";
          if (data.finish_reason) finish(data);
        });
      }
      answer.dataset.done = "true";
    } catch (err) {
      showError(String(err));
    } finally {
      form.querySelector("button").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    var form = document.getElementById("playground");
    if (form) form.addEventListener("submit", play);
  });
})();
