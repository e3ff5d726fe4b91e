// Workflow pages: typed confirmations ("type the name to delete"). No inline scripts (CSP).
(function () {
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
