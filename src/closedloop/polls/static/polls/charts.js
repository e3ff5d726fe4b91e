// Poll dashboards (ECharts). No inline code (CSP): cards carry data-src (the polls API URL
// with the page's filters) or read JSON from a <script type="application/json"> by id.
(function () {
  "use strict";
  const rtl = document.documentElement.dir === "rtl";
  const primary = getComputedStyle(document.documentElement).getPropertyValue("--cl-primary").trim() || "#0f6e6e";
  const charts = [];
  const labels = readJson("poll-labels") || {};
  const config = document.getElementById("poll-config");
  const pollrunUrl = config ? config.dataset.pollrunUrl : "";

  function readJson(id) {
    const node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function pollrunHref(id) {
    return pollrunUrl ? pollrunUrl.replace(/\/0\/$/, "/" + id + "/") : "";
  }

  function init(holder) {
    if (!window.echarts) return null;
    const existing = window.echarts.getInstanceByDom(holder);
    if (existing) return existing;
    const chart = window.echarts.init(holder, null, { renderer: "canvas" });
    charts.push(chart);
    if (window.ResizeObserver) new ResizeObserver(() => chart.resize()).observe(holder);
    return chart;
  }

  function message(holder, text) {
    const chart = window.echarts && window.echarts.getInstanceByDom(holder);
    if (chart) chart.dispose();
    holder.replaceChildren();
    const p = document.createElement("p");
    p.className = "text-body-secondary small d-flex align-items-center justify-content-center h-100 mb-0";
    p.textContent = text;
    holder.appendChild(p);
  }

  function grid() {
    return { containLabel: true, left: 32, right: 32, top: 36, bottom: 8 };
  }

  function dateAxis(dates) {
    return { type: "category", data: dates, inverse: rtl, boundaryGap: false, axisLabel: { hideOverlap: true, margin: 14 } };
  }

  function valueAxis(extra) {
    return Object.assign({ type: "value", position: rtl ? "right" : "left", scale: false }, extra || {});
  }

  // --- numeric: sum / average / response rate over dates, optionally one series per panel ---
  function numericOption(data, measure) {
    const dates = data.dates || [];
    const byPanel = data.series_by_panel || {};
    const panelKeys = Object.keys(byPanel);
    const rate = measure === "response_rate";
    let series;
    if (panelKeys.length) {
      series = panelKeys.map((key) => ({
        name: byPanel[key].name || key,
        type: "line",
        connectNulls: false,
        symbolSize: 8,
        data: byPanel[key][measure] || [],
      }));
    } else {
      series = [{
        name: labels[measure] || measure,
        type: "line",
        symbolSize: 9,
        areaStyle: { opacity: 0.15 },
        itemStyle: { color: primary },
        lineStyle: { color: primary },
        data: data[measure] || [],
      }];
    }
    return {
      grid: grid(),
      tooltip: { trigger: "axis" },
      legend: panelKeys.length ? { type: "scroll", top: 0 } : { show: false },
      xAxis: dateAxis(dates),
      yAxis: valueAxis(rate ? { max: 100, axisLabel: { formatter: "{value} %" } } : {}),
      series: series,
    };
  }

  // --- categorical: share of each category per date (percent-stacked area) ---
  function categoricalOption(data) {
    const categories = data.categories || [];
    return {
      grid: grid(),
      tooltip: { trigger: "axis", valueFormatter: (v) => (v === null || v === undefined ? "–" : v + " %") },
      legend: { type: "scroll", top: 0 },
      xAxis: dateAxis(data.dates || []),
      yAxis: valueAxis({ max: 100, axisLabel: { formatter: "{value} %" } }),
      series: categories.map((name) => ({
        name: name,
        type: "line",
        stack: "share",
        areaStyle: {},
        symbolSize: 7,
        emphasis: { focus: "series" },
        data: (data.shares && data.shares[name]) || [],
      })),
    };
  }

  function dayOption(data, index, shape) {
    const categories = data.categories || [];
    const values = categories.map((name) => ({ name: name, value: ((data.counts || {})[name] || [])[index] || 0 }));
    if (shape === "bar") {
      return {
        grid: { containLabel: true, left: 8, right: 40, top: 10, bottom: 8 },
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
        xAxis: { type: "value", inverse: rtl, minInterval: 1 },
        yAxis: { type: "category", data: categories, inverse: true, position: rtl ? "right" : "left" },
        series: [{ type: "bar", barMaxWidth: 36, data: values.map((v) => v.value), itemStyle: { color: primary },
                   label: { show: true, position: rtl ? "left" : "right" } }],
      };
    }
    return {
      tooltip: { trigger: "item", formatter: "{b}: {c} ({d} %)" },
      series: [{
        type: "pie", radius: ["35%", "65%"], data: values, avoidLabelOverlap: true,
        label: { formatter: "{b}: {d} %" }, labelLine: { length: 8, length2: 8 },
        labelLayout: { hideOverlap: true },
      }],
    };
  }

  // --- open: word cloud ---
  function wordOption(words) {
    const max = words.reduce((m, w) => Math.max(m, w.count), 1);
    return {
      tooltip: { formatter: (p) => p.name + ": " + p.value },
      series: [{
        type: "wordCloud",
        shape: "circle",
        gridSize: 6,
        sizeRange: [14, 60],
        rotationRange: [0, 0],
        width: "100%",
        height: "100%",
        textStyle: { color: (p) => (p.value >= max * 0.6 ? primary : "#5b6b7a") },
        data: words.map((w) => ({ name: w.word, value: w.count })),
      }],
    };
  }

  function histogramOption(data) {
    const bins = data.bins || [];
    const fmt = (v) => (Math.round(v * 100) / 100).toString();
    return {
      grid: { containLabel: true, left: 8, right: 8, top: 10, bottom: 8 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "category", inverse: rtl, data: bins.map((b) => fmt(b.start) + "–" + fmt(b.end)), axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", position: rtl ? "right" : "left", minInterval: 1 },
      series: [{ type: "bar", barCategoryGap: "5%", itemStyle: { color: primary }, data: bins.map((b) => b.count) }],
    };
  }

  function barOption(rows) {
    return {
      grid: { containLabel: true, left: 8, right: 40, top: 10, bottom: 8 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "value", inverse: rtl, minInterval: 1 },
      yAxis: { type: "category", data: rows.map((r) => r.category), inverse: true, position: rtl ? "right" : "left",
               axisLabel: { width: 140, overflow: "truncate" } },
      series: [{ type: "bar", barMaxWidth: 36, data: rows.map((r) => r.count), itemStyle: { color: primary },
                 label: { show: true, position: rtl ? "left" : "right" } }],
    };
  }

  function indicatorOption(data) {
    const marks = [];
    if (data.baseline !== null && data.baseline !== undefined) marks.push({ yAxis: data.baseline, name: data.labels.baseline, lineStyle: { color: "#6c757d" } });
    if (data.goal !== null && data.goal !== undefined) marks.push({ yAxis: data.goal, name: data.labels.goal, lineStyle: { color: "#198754" } });
    return {
      grid: { containLabel: true, left: 8, right: 24, top: 16, bottom: 8 },
      tooltip: { trigger: "axis" },
      xAxis: dateAxis(data.dates),
      // keep the baseline and goal lines inside the chart
      yAxis: valueAxis({ max: (range) => Math.max(range.max, ...marks.map((m) => m.yAxis)) }),
      series: [{
        name: data.labels.values, type: "line", data: data.values, symbolSize: 8,
        itemStyle: { color: primary }, areaStyle: { opacity: 0.12 },
        markLine: marks.length ? { symbol: "none", label: { position: "insideEndTop", formatter: "{b}: {c}" }, data: marks } : undefined,
      }],
    };
  }

  // --- poll detail cards (fetch from the API) ---
  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then((r) => {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    });
  }

  function withParam(url, key, value) {
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + key + "=" + encodeURIComponent(value);
  }

  const lang = document.documentElement.lang || undefined;
  function formatNumber(value) {
    if (value === null || value === undefined) return "–";
    return Number(value).toLocaleString(lang, { maximumFractionDigits: 2 });
  }

  // the card's summary row and word list come with the chart payload
  function fillSummary(card, data) {
    const summary = (data && data.summary) || {};
    card.querySelectorAll("[data-stat]").forEach((node) => {
      const value = summary[node.dataset.stat];
      const text = formatNumber(value);
      node.textContent = node.dataset.unit && text !== "–" ? text + " " + node.dataset.unit : text;
    });
    const list = card.querySelector("[data-words]");
    const words = (data && data.words) || [];
    if (list && words.length) {
      list.replaceChildren();
      words.slice(0, 20).forEach((w) => {
        const item = document.createElement("li");
        item.className = "list-inline-item";
        const word = document.createElement("bdi");
        word.textContent = w.word;
        const count = document.createElement("span");
        count.className = "text-body-secondary";
        count.textContent = " (" + w.count + ")";
        item.append(word, count);
        list.appendChild(item);
      });
      card.querySelector("[data-words-box]").hidden = false;
    }
  }

  function failed(card, holder) {
    message(holder, labels.error || "");
    card.querySelectorAll("[data-stat]").forEach((node) => { node.textContent = "–"; });
  }

  function setupNumeric(card, holder) {
    const split = card.querySelector("[data-split]");
    let data = null;
    function measure() {
      const checked = card.querySelector("[data-measure]:checked");
      return checked ? checked.value : "sum";
    }
    function draw() {
      if (!data || !(data.dates || []).length) { message(holder, labels.no_data || ""); return; }
      const chart = init(holder);
      chart.setOption(numericOption(data, measure()), true);
      chart.off("click");
      chart.on("click", (p) => {
        const id = (data.pollruns || [])[p.dataIndex];
        const href = id ? pollrunHref(id) : "";
        if (href) window.location.assign(href);
      });
    }
    function load() {
      const url = split && split.checked ? withParam(holder.dataset.src, "split", "1") : holder.dataset.src;
      fetchJson(url).then((json) => { data = json; fillSummary(card, json); draw(); }).catch(() => failed(card, holder));
    }
    card.querySelectorAll("[data-measure]").forEach((input) => input.addEventListener("change", draw));
    if (split) split.addEventListener("change", load);
    load();
  }

  function setupCategorical(card, holder) {
    const controls = card.querySelector("[data-day-controls]");
    const select = card.querySelector("[data-day]");
    const dayHolder = card.querySelector("[data-day-chart]");
    fetchJson(holder.dataset.src).then((data) => {
      fillSummary(card, data);
      const dates = data.dates || [];
      if (!dates.length) { message(holder, labels.no_data || ""); return; }
      const chart = init(holder);
      chart.setOption(categoricalOption(data), true);
      chart.on("click", (p) => {
        if (select) { select.value = String(p.dataIndex); drawDay(); }
      });
      if (!select || !dayHolder) return;
      select.replaceChildren();
      dates.forEach((d, i) => {
        const option = document.createElement("option");
        option.value = String(i);
        option.textContent = d;
        select.appendChild(option);
      });
      select.value = String(dates.length - 1);
      controls.hidden = false;
      function drawDay() {
        const shape = card.querySelector("[data-shape]:checked");
        init(dayHolder).setOption(dayOption(data, Number(select.value), shape ? shape.value : "pie"), true);
      }
      select.addEventListener("change", drawDay);
      card.querySelectorAll("[data-shape]").forEach((i) => i.addEventListener("change", drawDay));
      drawDay();
    }).catch(() => failed(card, holder));
  }

  function setupOpen(card, holder) {
    fetchJson(holder.dataset.src).then((data) => {
      fillSummary(card, data);
      const words = data.words || [];
      if (!words.length) { message(holder, labels.no_data || ""); return; }
      init(holder).setOption(wordOption(words), true);
    }).catch(() => failed(card, holder));
  }

  if (window.echarts) {
    document.querySelectorAll("[data-poll-chart]").forEach((holder) => {
      const card = holder.closest("[data-question]");
      const kind = holder.dataset.pollChart;
      if (kind === "numeric") setupNumeric(card, holder);
      else if (kind === "categorical") setupCategorical(card, holder);
      else setupOpen(card, holder);
    });

    // --- charts whose data is on the page (poll run summary, featured indicator) ---
    document.querySelectorAll("[data-summary-chart]").forEach((holder) => {
      const data = readJson(holder.dataset.summaryChart);
      if (!data) return;
      let option = null;
      if (data.kind === "indicator") option = indicatorOption(data);
      else if (data.type === "numeric") option = histogramOption(data);
      else if (data.type === "categorical") option = barOption(data.categories || []);
      else if (data.words && data.words.length) option = wordOption(data.words);
      if (option) init(holder).setOption(option);
    });
    window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  }

  // --- forms: custom dates, auto-submitting selects, message length counter ---
  document.querySelectorAll("[data-window-select]").forEach((select) => {
    const form = select.form;
    const toggle = () => form.querySelectorAll("[data-custom-date]").forEach((node) => {
      node.classList.toggle("d-none", select.value !== "custom");
    });
    select.addEventListener("change", toggle);
  });
  document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
    form.addEventListener("change", () => form.requestSubmit ? form.requestSubmit() : form.submit());
  });
  document.querySelectorAll("textarea[data-counter]").forEach((area) => {
    const counter = document.getElementById(area.dataset.counter);
    if (!counter) return;
    const count = counter.querySelector("[data-count]");
    const max = Number(counter.dataset.max || 0);
    const update = () => {
      count.textContent = String(area.value.length);
      counter.classList.toggle("text-danger", max > 0 && area.value.length > max * 0.9);
    };
    area.addEventListener("input", update);
    update();
  });
})();
