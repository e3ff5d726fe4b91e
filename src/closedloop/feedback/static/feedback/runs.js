// Delivery pages: the run donut (re-drawn after each htmx poll), the recipient filter of
// the run form, and the schedule form's show/hide of sections. No inline scripts (CSP).
(function () {
  "use strict";

  function drawDonut() {
    const holder = document.getElementById("run-donut");
    const source = document.getElementById("run-donut-data");
    if (!holder || !source || !window.echarts) return;
    const data = JSON.parse(source.textContent);
    const colors = ["#198754", "#dc3545", "#adb5bd", "#0d6efd", "#6c757d"];
    const items = data.labels
      .map((name, i) => ({ name: name, value: data.values[i], itemStyle: { color: colors[i] } }))
      .filter((item) => item.value > 0);
    const chart = window.echarts.getInstanceByDom(holder) || window.echarts.init(holder, null, { renderer: "svg" });
    const total = data.values.reduce((a, b) => a + b, 0);
    chart.setOption({
      tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
      title: { text: String(total), subtext: data.opened ? data.opened_label : "", left: "center", top: "center", textStyle: { fontSize: 20 } },
      series: [{ type: "pie", radius: ["55%", "80%"], avoidLabelOverlap: true, label: { show: false }, data: items.length ? items : [{ name: "", value: 1, itemStyle: { color: "#e9ecef" } }] }],
    }, true);
  }

  function filterRecipients(event) {
    const input = event.target.closest(".cl-recipient-filter");
    if (!input) return;
    const needle = input.value.trim().toLowerCase();
    document.querySelectorAll(".cl-recipient").forEach((row) => {
      row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
    });
  }

  function scheduleForm() {
    const form = document.getElementById("schedule-form");
    if (!form) return;
    const op = form.querySelector("[data-schedule-operation]");
    const repeat = form.querySelector("[data-schedule-repeat]");
    const update = () => {
      const isAction = op.value === "action_run";
      form.querySelectorAll('[data-op-section="action_run"]').forEach((el) => { el.hidden = !isAction; });
      form.querySelectorAll('[data-op-section="other"]').forEach((el) => { el.hidden = isAction; });
      form.querySelectorAll("[data-repeat-only]").forEach((el) => { el.hidden = !repeat.checked; });
    };
    op.addEventListener("change", update);
    repeat.addEventListener("change", update);
    update();
  }

  document.addEventListener("input", filterRecipients);
  document.addEventListener("htmx:afterSettle", drawDonut);
  window.addEventListener("resize", () => {
    const holder = document.getElementById("run-donut");
    const chart = holder && window.echarts && window.echarts.getInstanceByDom(holder);
    if (chart) chart.resize();
  });
  drawDonut();
  scheduleForm();
})();
