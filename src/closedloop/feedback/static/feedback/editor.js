// Action editor: insert {{ column }} / {% if condition %} / report tags at the cursor of
// the text (or subject) field last focused, and simple formatting for HTML or Markdown.
(() => {
  const form = document.getElementById("action-form");
  if (!form) return;
  const text = document.getElementById("id_text_content");
  const format = document.getElementById("id_text_format");
  let target = text;
  form.querySelectorAll("[data-insert-target]").forEach((el) => {
    el.addEventListener("focus", () => { target = el; });
  });

  function insert(before, after = "") {
    const field = target || text;
    if (!field) return;
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    const selected = field.value.slice(start, end);
    field.value = field.value.slice(0, start) + before + selected + after + field.value.slice(end);
    const caret = start + before.length + selected.length;
    field.focus();
    field.setSelectionRange(caret, caret);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function markdown() { return format && format.value === "markdown"; }

  const wrappers = {
    bold: () => (markdown() ? ["**", "**"] : ["<strong>", "</strong>"]),
    italic: () => (markdown() ? ["*", "*"] : ["<em>", "</em>"]),
    link: () => (markdown() ? ["[", "](https://)"] : ['<a href="https://">', "</a>"]),
    paragraph: () => (markdown() ? ["\n\n", ""] : ["<p>", "</p>"]),
  };

  form.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-insert], button[data-wrap]");
    if (!button) return;
    event.preventDefault();
    if (button.dataset.wrap) {
      if (target !== text) target = text;
      const [before, after] = wrappers[button.dataset.wrap]();
      insert(before, after);
      return;
    }
    const source = button.dataset.source ? document.getElementById(button.dataset.source) : null;
    const name = source ? source.value : "";
    switch (button.dataset.insert) {
      case "column":
        if (name) insert(`{{ ${name} }}`);
        break;
      case "condition":
        if (target !== text) target = text;
        if (name) insert(`{% if ${name} %}`, "{% endif %}");
        break;
      case "report":
        if (target !== text) target = text;
        if (name) insert(`{% report "${name}" %}`);
        break;
      case "rubric":
        if (target !== text) target = text;
        insert("{% rubric %}");
        break;
      default:
        break;
    }
  });
})();
