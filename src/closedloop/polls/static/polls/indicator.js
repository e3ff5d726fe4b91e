// Indicator chart (ECharts): follow-up sums per date against a flat baseline or goal
// line. Data comes from the <script type="application/json"> named by
// data-indicator-chart (no inline code: CSP).
(function () {
  if (!window.echarts) return;
  const rtl = document.documentElement.dir === "rtl";
  const primary = getComputedStyle(document.documentElement).getPropertyValue("--cl-primary").trim() || "#0f6e6e";
  document.querySelectorAll("[data-indicator-chart]").forEach((holder) => {
    const source = document.getElementById(holder.dataset.indicatorChart);
    if (!source) return;
    const data = JSON.parse(source.textContent);
    const flat = data.goal !== null && data.goal !== undefined ? data.goal : data.baseline;
    const flatName = data.goal !== null && data.goal !== undefined ? data.labels.goal : data.labels.baseline;
    const series = [{
      name: data.labels.follow_up, type: "line", data: data.sums, smooth: false, symbolSize: 7,
      itemStyle: { color: data.sample ? "#b8860b" : primary }, connectNulls: true,
    }];
    if (flat !== null && flat !== undefined) {
      series.push({
        name: flatName, type: "line", data: data.dates.map(() => flat), symbol: "none",
        lineStyle: { type: "dashed", color: "#dc3545" }, itemStyle: { color: "#dc3545" },
      });
    }
    const chart = window.echarts.init(holder, null, { renderer: "svg" });
    chart.setOption({
      title: data.sample ? { text: data.labels.sample, right: rtl ? undefined : 8, left: rtl ? 8 : undefined, top: 0, textStyle: { fontSize: 12, color: "#b8860b" } } : undefined,
      legend: { top: 0, left: rtl ? "right" : "left" },
      grid: { containLabel: true, left: 8, right: 16, top: 36, bottom: 8 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: data.dates, inverse: rtl, axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", name: data.labels.y_axis, nameLocation: "middle", nameGap: 42, position: rtl ? "right" : "left" },
      series: series,
    });
    window.addEventListener("resize", () => chart.resize());
  });
})();
