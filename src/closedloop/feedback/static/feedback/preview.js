// Live preview: links in a previewed message open in a new tab (never navigate away from
// the editor), and Alt+ArrowLeft / Alt+ArrowRight step through the rows.
(() => {
  const preview = document.getElementById("preview");
  if (!preview) return;
  function fixLinks() {
    preview.querySelectorAll(".cl-preview-body a[href]").forEach((a) => {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    });
  }
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target === preview) fixLinks();
  });
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    const rtl = document.documentElement.dir === "rtl";
    const forward = (event.key === "ArrowRight") !== rtl;
    const button = preview.querySelector(forward ? "[data-testid=preview-next]" : "[data-testid=preview-prev]");
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
})();
