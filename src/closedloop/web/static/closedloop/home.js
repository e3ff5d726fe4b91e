// Home dashboard: org units by type as a bar chart (data from json_script).
(function () {
  const holder = document.getElementById("units-by-type-chart");
  const source = document.getElementById("units-by-type-data");
  if (!holder || !source || !window.echarts) return;
  const data = JSON.parse(source.textContent);
  const rtl = document.documentElement.dir === "rtl";
  const color = getComputedStyle(document.documentElement).getPropertyValue("--cl-primary").trim() || "#0f6e6e";
  const chart = window.echarts.init(holder, null, { renderer: "svg" });
  chart.setOption({
    grid: { containLabel: true, left: 16, right: 40, top: 10, bottom: 10 },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    xAxis: { type: "value", inverse: rtl },
    yAxis: { type: "category", data: data.labels, inverse: true, position: rtl ? "right" : "left" },
    series: [{ type: "bar", data: data.values, itemStyle: { color: color }, label: { show: true, position: rtl ? "left" : "right" } }],
  });
  window.addEventListener("resize", () => chart.resize());
})();
