// Polls setup: enable a row's controls only when its switch is on, and the delete
// button only once the name is typed. No inline scripts (CSP).
(function () {
  function syncRow(toggle) {
    const target = document.getElementById(toggle.dataset.rowToggle);
    if (!target) return;
    target.querySelectorAll("input, select").forEach((el) => { el.disabled = !toggle.checked; });
    target.classList.toggle("opacity-50", !toggle.checked);
  }
  document.addEventListener("change", (event) => {
    const toggle = event.target.closest("[data-row-toggle]");
    if (toggle) syncRow(toggle);
  });
  document.querySelectorAll("[data-row-toggle]").forEach(syncRow);

  function syncTyped(input) {
    const button = document.getElementById(input.dataset.confirmTarget);
    if (button) button.disabled = input.value.trim() !== input.dataset.confirmValue;
  }
  document.addEventListener("input", (event) => {
    const input = event.target.closest("[data-confirm-value]");
    if (input) syncTyped(input);
  });
  document.querySelectorAll("[data-confirm-value]").forEach(syncTyped);
})();
