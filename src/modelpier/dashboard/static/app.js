/* modelpier dashboard: the live traffic charts of a deployment page (uPlot, vendored).
   Polls the page's traffic.json (shaped by dashboard/traffic.py) every few seconds while the tab is
   visible; "no traffic data yet" until the platform has observations. Everything else on the pages
   is plain HTML with htmx attributes. No inline code: the Content-Security-Policy forbids it. */
(function () {
  "use strict";

  // Okabe-Ito: distinguishable with the common colour-vision deficiencies.
  var COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
  var HEIGHT = 200;

  function TrafficCharts(root) {
    this.root = root;
    this.src = root.getAttribute("data-src");
    this.interval = parseInt(root.getAttribute("data-interval-ms") || "5000", 10);
    this.state = root.querySelector("#traffic-state");
    this.charts = root.querySelector(".charts");
    this.summary = root.querySelector("#traffic-summary");
    this.plots = {};
  }

  TrafficCharts.prototype.start = function () {
    var self = this;
    this.poll();
    window.setInterval(function () { if (!document.hidden) { self.poll(); } }, this.interval);
    var pending = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(pending);
      pending = window.setTimeout(function () { self.resize(); }, 150);
    });
  };

  TrafficCharts.prototype.poll = function () {
    var self = this;
    fetch(this.src, { headers: { "Accept": "application/json" }, credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 401) {
          window.location.reload(); // the session ended: the page itself goes to the sign-in form
          return null;
        }
        if (!response.ok) { return { available: false, message: "traffic data unavailable (HTTP " + response.status + ")" }; }
        return response.json();
      })
      .then(function (data) { if (data) { self.render(data); } })
      .catch(function () { self.render({ available: false, message: "traffic data unavailable" }); });
  };

  TrafficCharts.prototype.render = function (data) {
    if (!data.available) {
      this.state.textContent = data.message || "no traffic data yet";
      this.charts.hidden = true;
      this.summary.hidden = true;
      return;
    }
    this.charts.hidden = false;
    this.state.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    var self = this;
    data.charts.forEach(function (chart) { self.draw(chart); });
    this.fillSummary(data.summary || []);
  };

  TrafficCharts.prototype.draw = function (chart) {
    var el = this.root.querySelector('[data-chart="' + chart.id + '"]');
    if (!el || typeof uPlot === "undefined") { return; }
    var rows = [chart.t].concat(chart.series.map(function (s) { return s.values; }));
    var labels = chart.series.map(function (s) { return s.label; }).join("|");
    var current = this.plots[chart.id];
    if (current && current.labels === labels) {
      current.plot.setData(rows);
      return;
    }
    if (current) { current.plot.destroy(); }
    var options = {
      width: Math.max(el.clientWidth, 200),
      height: HEIGHT,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max || 0, 1)]; } } },
      axes: [{}, { label: chart.unit, size: 60 }],
      series: [{}].concat(chart.series.map(function (s, i) {
        return { label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
                 dash: / p99$/.test(s.label) ? [6, 4] : undefined,
                 value: function (u, v) { return v == null ? "–" : v.toFixed(2) + (chart.unit ? " " + chart.unit : ""); } };
      }))
    };
    this.plots[chart.id] = { labels: labels, plot: new uPlot(options, rows, el), el: el };
  };

  TrafficCharts.prototype.resize = function () {
    var plots = this.plots;
    Object.keys(plots).forEach(function (id) {
      plots[id].plot.setSize({ width: Math.max(plots[id].el.clientWidth, 200), height: HEIGHT });
    });
  };

  TrafficCharts.prototype.fillSummary = function (rows) {
    var body = this.summary.querySelector("tbody");
    var columns = Array.prototype.map.call(this.summary.querySelectorAll("thead th"), function (th, i) {
      return i === 0 ? "name" : th.textContent;
    });
    while (body.firstChild) { body.removeChild(body.firstChild); }
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      columns.forEach(function (column, i) {
        var cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) { cell.setAttribute("scope", "row"); }
        cell.textContent = row[column] === undefined ? "–" : row[column];
        tr.appendChild(cell);
      });
      body.appendChild(tr);
    });
    this.summary.hidden = rows.length === 0;
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("traffic");
    if (root) { new TrafficCharts(root).start(); }
  });
})();
