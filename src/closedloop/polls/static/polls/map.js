// Poll map tab (ECharts GeoJSON): panel org units coloured by the average value (numeric
// questions) or the most common category. Data from <script id="map-data">; no inline code.
(function () {
  "use strict";
  const holder = document.getElementById("poll-map");
  const legend = document.getElementById("poll-map-legend");
  if (!holder || !window.echarts) return;
  const data = JSON.parse((document.getElementById("map-data") || {}).textContent || "null");
  const labels = JSON.parse((document.getElementById("map-labels") || {}).textContent || "{}");
  if (!data) return;
  // ECharts' default palette, so a category has the same colour here as on the charts
  const palette = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc"];
  const scale = ["#deebf7", "#9ecae1", "#4292c6", "#08519c"];
  const empty = "#e9ecef";
  const units = (data.units || []).filter((u) => u.geometry);
  if (!units.length) {
    const p = document.createElement("p");
    p.className = "text-body-secondary text-center py-5 mb-0";
    p.textContent = labels.no_location || "";
    holder.replaceWith(p);
    return;
  }
  const numeric = data.type === "numeric";
  const values = units.map((u) => u.value).filter((v) => v !== null && v !== undefined);
  const min = values.length ? Math.min.apply(null, values) : 0;
  const max = values.length ? Math.max.apply(null, values) : 0;
  const categories = (data.categories || []).slice();
  units.forEach((u) => { if (u.category && categories.indexOf(u.category) < 0) categories.push(u.category); });

  function colour(unit) {
    if (numeric) {
      if (unit.value === null || unit.value === undefined) return empty;
      if (max === min) return scale[scale.length - 1];
      const step = Math.min(scale.length - 1, Math.floor(((unit.value - min) / (max - min)) * scale.length));
      return scale[step];
    }
    if (!unit.category) return empty;
    return palette[categories.indexOf(unit.category) % palette.length];
  }

  const features = [];
  const points = [];
  units.forEach((u) => {
    if (u.geometry.type === "Point") {
      points.push({ name: String(u.id), value: u.geometry.coordinates.concat([u.value]), unit: u });
    } else {
      features.push({ type: "Feature", properties: { key: String(u.id) }, geometry: u.geometry });
    }
  });
  const byKey = {};
  units.forEach((u) => { byKey[String(u.id)] = u; });
  function tip(u) {
    const parts = [u.name + (u.panel ? " (" + u.panel + ")" : "")];
    if (numeric && u.value !== null && u.value !== undefined) parts.push((labels.value || "") + ": " + u.value);
    if (u.category) parts.push(u.category);
    parts.push((labels.count || "") + ": " + u.count);
    return parts.map((t) => String(t).replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c])).join("<br>");
  }

  const option = { tooltip: { trigger: "item" }, series: [] };
  if (features.length) {
    window.echarts.registerMap("polls-units", { type: "FeatureCollection", features: features });
    option.geo = {
      map: "polls-units", nameProperty: "key", roam: true, selectedMode: false,
      layoutCenter: ["50%", "50%"], layoutSize: "95%",
      label: { show: false }, emphasis: { label: { show: false }, itemStyle: { areaColor: "#ffd166" } },
      itemStyle: { borderColor: "#fff", borderWidth: 1, areaColor: empty },
      regions: features.map((f) => ({ name: f.properties.key, itemStyle: { areaColor: colour(byKey[f.properties.key]) } })),
      tooltip: { show: true, formatter: (p) => tip(byKey[p.name]) },
    };
  } else {
    // only points: place them on a plain longitude / latitude grid
    option.xAxis = { type: "value", scale: true, show: false };
    option.yAxis = { type: "value", scale: true, show: false };
    option.grid = { left: 20, right: 20, top: 20, bottom: 20 };
  }
  if (points.length) {
    option.series.push({
      type: "scatter", coordinateSystem: features.length ? "geo" : "cartesian2d", symbolSize: 16,
      data: points.map((p) => ({ name: p.name, value: p.value, itemStyle: { color: colour(p.unit), borderColor: "#333" } })),
      tooltip: { formatter: (p) => tip(byKey[p.name]) },
    });
  }
  const chart = window.echarts.init(holder, null, { renderer: "canvas" });
  chart.setOption(option);
  if (window.ResizeObserver) new ResizeObserver(() => chart.resize()).observe(holder);
  window.addEventListener("resize", () => chart.resize());

  function swatch(color, text) {
    const item = document.createElement("span");
    const box = document.createElement("span");
    box.className = "cl-legend-swatch me-1";
    box.style.background = color;
    item.appendChild(box);
    item.appendChild(document.createTextNode(text));
    legend.appendChild(item);
  }
  if (legend) {
    if (numeric && values.length) {
      const fmt = (v) => (Math.round(v * 100) / 100).toString();
      if (max === min) swatch(scale[scale.length - 1], fmt(min));
      else scale.forEach((c, i) => swatch(c, fmt(min + ((max - min) * i) / scale.length) + "–" + fmt(min + ((max - min) * (i + 1)) / scale.length)));
    } else if (!numeric) {
      categories.filter((c) => units.some((u) => u.category === c)).forEach((c) => swatch(palette[categories.indexOf(c) % palette.length], c));
    }
    swatch(empty, labels.no_data || "");
  }
})();
