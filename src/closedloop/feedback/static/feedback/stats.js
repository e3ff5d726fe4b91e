// Statistics charts (ECharts). Each holder [data-chart=ID] reads its JSON from the
// <script type="application/json" id=ID> next to it. No inline code (CSP).
(function () {
  const rtl = document.documentElement.dir === "rtl";
  const color = getComputedStyle(document.documentElement).getPropertyValue("--cl-primary").trim() || "#0f6e6e";
  const charts = [];

  function dateLabel(ms) {
    const d = new Date(ms);
    return d.toISOString().slice(0, 10);
  }

  function histogram(data) {
    return {
      grid: { containLabel: true, left: 8, right: 8, top: 10, bottom: 8 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "category", data: data.labels, inverse: rtl, axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", position: rtl ? "right" : "left", minInterval: 1 },
      series: [{ type: "bar", data: data.values, barCategoryGap: "5%", itemStyle: { color: color } }],
    };
  }

  function bar(data) {
    return {
      grid: { containLabel: true, left: 8, right: 40, top: 10, bottom: 8 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "value", inverse: rtl, minInterval: 1 },
      yAxis: { type: "category", data: data.labels, inverse: true, position: rtl ? "right" : "left",
               axisLabel: { width: 160, overflow: "truncate" } },
      series: [{ type: "bar", data: data.values, itemStyle: { color: color },
                 label: { show: true, position: rtl ? "left" : "right" } }],
    };
  }

  function box(data, marked) {
    const valueAxis = {
      type: "value", scale: true, inverse: rtl,
      axisLabel: { hideOverlap: true, formatter: data.datetime ? dateLabel : undefined },
    };
    const series = [{
      type: "boxplot", data: [data.box], itemStyle: { color: "#ffffff", borderColor: color },
      tooltip: { formatter: () => ["min", "Q1", "median", "Q3", "max"].map((n, i) => n + ": " + data.labels[i]).join("<br>") },
    }];
    if (marked && data.point !== null && data.point !== undefined) {
      series.push({
        type: "scatter", data: [[data.point, 0]], symbolSize: 14, itemStyle: { color: "#dc3545" },
        tooltip: { formatter: () => data.point_label },
        z: 10,
      });
    }
    return {
      grid: { containLabel: true, left: 12, right: 12, top: 10, bottom: 10 },
      tooltip: { trigger: "item" },
      xAxis: valueAxis,
      yAxis: { type: "category", data: [""], axisTick: { show: false }, axisLine: { show: false } },
      series: series,
    };
  }

  function optionFor(data) {
    switch (data.kind) {
      case "histogram": return histogram(data);
      case "bar": return bar(data);
      case "box": return box(data, false);
      case "box_marked": return box(data, true);
      default: return null;
    }
  }

  if (window.echarts) {
    document.querySelectorAll("[data-chart]").forEach((holder) => {
      const source = document.getElementById(holder.dataset.chart);
      if (!source) return;
      const option = optionFor(JSON.parse(source.textContent));
      if (!option) return;
      const chart = window.echarts.init(holder, null, { renderer: "svg" });
      chart.setOption(option);
      charts.push(chart);
    });
    window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  }

  document.querySelectorAll("select[data-navigate]").forEach((select) => {
    select.addEventListener("change", () => { window.location.href = select.value; });
  });
})();
