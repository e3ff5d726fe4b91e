/* The visual condition builder: nested AND / OR / NOT groups of rules, serialised as
   jQuery-QueryBuilder JSON into a hidden input, with a live count of matching rows.
   No jQuery; markup from feedback/builder/widget.html; data via json_script. */
(function () {
  "use strict";
  if (window.clConditionBuilder) { window.clConditionBuilder.initAll(); return; }

  var NO_VALUE = ["is_empty", "is_not_empty", "is_null", "is_not_null"];
  var RANGE = ["between", "not_between"];
  var uid = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function nextId(prefix) { uid += 1; return prefix + "-" + uid; }

  function readJson(id) {
    var node = id && document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    var input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function isGroup(item) { return item && typeof item === "object" && Array.isArray(item.rules) && !item.operator; }

  /* datetime-local <-> "YYYY-MM-DD HH:mm:ss" */
  function toLocalInput(value) {
    if (typeof value !== "string") return "";
    var m = value.match(/^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2})?$/);
    return m ? m[1] + "T" + m[2] + (m[3] || "") : null;
  }
  function fromLocalInput(value) {
    if (!value) return "";
    var m = value.match(/^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?/);
    return m ? m[1] + " " + m[2] + (m[3] || ":00") : value;
  }

  function Builder(root) {
    this.root = root;
    this.input = document.getElementById(root.dataset.inputId);
    this.fields = readJson(root.dataset.fieldsId) || [];
    this.s = readJson(root.dataset.stringsId) || { operators: {} };
    this.tree = root.querySelector("[data-builder-tree]");
    this.countNode = root.querySelector("[data-builder-count]");
    this.errorNode = root.querySelector("[data-builder-error]");
    this.countUrl = root.dataset.countUrl || "";
    this.actionId = root.dataset.actionId || "";
    this.timer = null;
    this.seq = 0;
    this.byName = {};
    var self = this;
    this.fields.forEach(function (f) { self.byName[f.name] = f; });
    var formula = null;
    try { formula = JSON.parse(this.input.value || "{}"); } catch (e) { formula = null; }
    this.state = this.normaliseGroup(formula || {});
    this.render();
    this.sync(true);
  }

  Builder.prototype.normaliseGroup = function (group) {
    var self = this;
    return {
      condition: String(group.condition || "AND").toUpperCase() === "OR" ? "OR" : "AND",
      not: !!group.not,
      rules: (Array.isArray(group.rules) ? group.rules : []).map(function (item) {
        return isGroup(item) ? self.normaliseGroup(item) : self.normaliseRule(item);
      })
    };
  };

  Builder.prototype.normaliseRule = function (rule) {
    rule = rule || {};
    var field = this.byName[rule.field || rule.id] ? (rule.field || rule.id) : (this.fields[0] || {}).name;
    var info = this.byName[field] || { operators: [] };
    var op = info.operators.indexOf(rule.operator) >= 0 ? rule.operator : info.operators[0];
    var value = rule.value;
    if (RANGE.indexOf(op) >= 0 && !Array.isArray(value)) value = ["", ""];
    return { field: field, operator: op, value: value === undefined ? "" : value, raw: rule };
  };

  Builder.prototype.newRule = function () { return this.normaliseRule({}); };

  /* --- serialisation ------------------------------------------------------------------ */

  Builder.prototype.serialiseRule = function (rule) {
    var info = this.byName[rule.field] || {};
    var value = rule.value;
    if (NO_VALUE.indexOf(rule.operator) >= 0) value = null;
    return {
      id: rule.field, field: rule.field, type: info.type || "string",
      input: info.input || "text", operator: rule.operator, value: value
    };
  };

  Builder.prototype.serialiseGroup = function (group) {
    var self = this;
    return {
      condition: group.condition, not: group.not, valid: true,
      rules: group.rules.map(function (item) {
        return item.rules ? self.serialiseGroup(item) : self.serialiseRule(item);
      })
    };
  };

  Builder.prototype.sync = function (initial) {
    var formula = this.serialiseGroup(this.state);
    var text = formula.rules.length ? JSON.stringify(formula) : "{}";
    var changed = this.input.value !== text;
    this.input.value = text;
    if (changed && !initial) this.input.dispatchEvent(new Event("change", { bubbles: true }));
    this.scheduleCount(initial ? 0 : 400);
  };

  /* --- live count --------------------------------------------------------------------- */

  Builder.prototype.scheduleCount = function (delay) {
    if (!this.countUrl) return;
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.count(); }, delay);
  };

  Builder.prototype.count = function () {
    var self = this;
    var seq = ++this.seq;
    var body = { formula: JSON.parse(this.input.value || "{}") };
    if (this.actionId) body.action = Number(this.actionId);
    this.countNode.textContent = this.s.counting || "…";
    this.root.setAttribute("aria-busy", "true");
    fetch(this.countUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return { error: self.s.failed }; });
    }).then(function (data) {
      if (seq !== self.seq) return;
      self.showCount(data);
    }).catch(function () {
      if (seq === self.seq) self.showCount({ error: self.s.failed });
    });
  };

  Builder.prototype.showCount = function (data) {
    this.root.removeAttribute("aria-busy");
    if (data && typeof data.count === "number") {
      var n = data.count;
      var text = n === 1 ? this.s.count1 : String(this.s.countN || "%(count)s").replace("%(count)s", n.toLocaleString());
      this.countNode.textContent = text;
      this.countNode.dataset.count = String(n);
      this.errorNode.textContent = "";
    } else {
      this.countNode.textContent = "";
      delete this.countNode.dataset.count;
      this.errorNode.textContent = (data && data.error) || this.s.failed || "";
    }
  };

  /* --- rendering ---------------------------------------------------------------------- */

  Builder.prototype.render = function () {
    this.tree.textContent = "";
    if (!this.fields.length) {
      this.tree.appendChild(el("p", { className: "small text-body-secondary mb-0", text: this.s.noColumns }));
      return;
    }
    this.tree.appendChild(this.renderGroup(this.state, null));
  };

  Builder.prototype.changed = function (rerender) {
    if (rerender) this.render();
    this.sync(false);
  };

  Builder.prototype.renderGroup = function (group, parent) {
    var self = this;
    var s = this.s;
    var box = el("div", {
      className: "cl-builder-group border rounded p-2" + (parent ? " mt-2 bg-body-tertiary" : ""),
      role: "group", "aria-label": s.group, "data-builder-group": true
    });
    var head = el("div", { className: "d-flex flex-wrap align-items-center gap-2 mb-1" });
    var radios = el("div", { className: "btn-group btn-group-sm", role: "radiogroup", "aria-label": s.match });
    var name = nextId("cl-join");
    ["AND", "OR"].forEach(function (join) {
      var id = nextId("cl-join-opt");
      var radio = el("input", { type: "radio", className: "btn-check", name: name, id: id, value: join, checked: group.condition === join, "data-builder-join": join });
      radio.addEventListener("change", function () { group.condition = join; self.changed(false); });
      radios.appendChild(radio);
      radios.appendChild(el("label", { className: "btn btn-outline-secondary", "for": id, text: join === "AND" ? s.and : s.or }));
    });
    head.appendChild(radios);
    var notId = nextId("cl-not");
    var notBox = el("input", { type: "checkbox", className: "form-check-input", id: notId, checked: group.not, "data-builder-not": true });
    notBox.addEventListener("change", function () { group.not = notBox.checked; self.changed(false); });
    head.appendChild(el("div", { className: "form-check form-check-inline mb-0", title: s.negate }, [
      notBox, el("label", { className: "form-check-label", "for": notId, text: s.not })
    ]));
    var tools = el("div", { className: "ms-auto d-flex flex-wrap gap-1" });
    var addRule = el("button", { type: "button", className: "btn btn-sm btn-outline-primary", "data-builder-add-rule": true }, [
      el("i", { className: "bi bi-plus-lg", "aria-hidden": "true" }), document.createTextNode(" " + s.addRule)
    ]);
    addRule.addEventListener("click", function () { group.rules.push(self.newRule()); self.changed(true); self.focusLast(); });
    var addGroup = el("button", { type: "button", className: "btn btn-sm btn-outline-secondary", "data-builder-add-group": true }, [
      el("i", { className: "bi bi-diagram-2", "aria-hidden": "true" }), document.createTextNode(" " + s.addGroup)
    ]);
    addGroup.addEventListener("click", function () {
      group.rules.push({ condition: "AND", not: false, rules: [self.newRule()] });
      self.changed(true);
    });
    tools.appendChild(addRule);
    tools.appendChild(addGroup);
    if (parent) {
      var remove = el("button", { type: "button", className: "btn btn-sm btn-outline-danger", "aria-label": s.removeGroup, title: s.removeGroup, "data-builder-remove-group": true }, [
        el("i", { className: "bi bi-x-lg", "aria-hidden": "true" })
      ]);
      remove.addEventListener("click", function () {
        parent.rules.splice(parent.rules.indexOf(group), 1);
        self.changed(true);
      });
      tools.appendChild(remove);
    }
    head.appendChild(tools);
    box.appendChild(head);
    if (!group.rules.length && !parent) {
      box.appendChild(el("p", { className: "small text-body-secondary mb-0", text: s.empty }));
    }
    group.rules.forEach(function (item) {
      box.appendChild(item.rules ? self.renderGroup(item, group) : self.renderRule(item, group));
    });
    return box;
  };

  Builder.prototype.focusLast = function () {
    var selects = this.tree.querySelectorAll("[data-builder-field]");
    if (selects.length) selects[selects.length - 1].focus();
  };

  Builder.prototype.renderRule = function (rule, group) {
    var self = this;
    var s = this.s;
    var info = this.byName[rule.field] || { operators: [], choices: [] };
    var row = el("div", { className: "cl-builder-rule row g-2 align-items-center mt-1", role: "group", "aria-label": s.rule, "data-builder-rule": true });

    var fieldId = nextId("cl-field");
    var field = el("select", { className: "form-select form-select-sm", id: fieldId, "aria-label": s.field, "data-builder-field": true });
    this.fields.forEach(function (f) {
      field.appendChild(el("option", { value: f.name, text: f.name, selected: f.name === rule.field }));
    });
    field.addEventListener("change", function () {
      var next = self.byName[field.value];
      rule.field = field.value;
      if (next.operators.indexOf(rule.operator) < 0) rule.operator = next.operators[0];
      rule.value = RANGE.indexOf(rule.operator) >= 0 ? ["", ""] : "";
      self.changed(true);
    });

    var op = el("select", { className: "form-select form-select-sm", "aria-label": s.operator, "data-builder-operator": true });
    info.operators.forEach(function (name) {
      op.appendChild(el("option", { value: name, text: (s.operators || {})[name] || name, selected: name === rule.operator }));
    });
    op.addEventListener("change", function () {
      var wasRange = RANGE.indexOf(rule.operator) >= 0;
      rule.operator = op.value;
      var isRange = RANGE.indexOf(rule.operator) >= 0;
      if (isRange && !wasRange) rule.value = [rule.value === null ? "" : rule.value, ""];
      if (!isRange && wasRange) rule.value = Array.isArray(rule.value) ? rule.value[0] : "";
      if (NO_VALUE.indexOf(rule.operator) >= 0) rule.value = null;
      else if (rule.value === null) rule.value = "";
      self.changed(true);
    });

    var remove = el("button", { type: "button", className: "btn btn-sm btn-outline-danger", "aria-label": s.removeRule, title: s.removeRule, "data-builder-remove-rule": true }, [
      el("i", { className: "bi bi-trash", "aria-hidden": "true" })
    ]);
    remove.addEventListener("click", function () {
      group.rules.splice(group.rules.indexOf(rule), 1);
      self.changed(true);
    });

    row.appendChild(el("div", { className: "col-12 col-md-4" }, [field]));
    row.appendChild(el("div", { className: "col-12 col-md-3" }, [op]));
    var valueCol = el("div", { className: "col" }, [this.renderValue(rule, info)]);
    valueCol.style.minWidth = "0";
    row.appendChild(valueCol);
    row.appendChild(el("div", { className: "col-auto" }, [remove]));
    return row;
  };

  Builder.prototype.valueInput = function (rule, info, index, label) {
    var self = this;
    var current = index === null ? rule.value : (rule.value || [])[index];
    var set = function (v) {
      if (index === null) rule.value = v; else rule.value[index] = v;
      self.changed(false);
    };
    var input;
    if (info.choices && info.choices.length) {
      input = el("select", { className: "form-select form-select-sm", "aria-label": label, "data-builder-value": true });
      input.appendChild(el("option", { value: "", text: this.s.choose }));
      info.choices.forEach(function (choice, i) {
        var text = choice === true ? self.s["true"] : choice === false ? self.s["false"] : String(choice);
        var same = current === choice || (current !== "" && current !== null && String(current).toLowerCase() === String(choice).toLowerCase());
        input.appendChild(el("option", { value: String(i), text: text, selected: same }));
      });
      input.addEventListener("change", function () { set(input.value === "" ? "" : info.choices[Number(input.value)]); });
      return input;
    }
    if (info.type === "integer" || info.type === "double") {
      input = el("input", { type: "number", step: info.type === "integer" ? "1" : "any", inputmode: "decimal", className: "form-control form-control-sm", "aria-label": label, value: current === null || current === undefined ? "" : String(current), "data-builder-value": true });
      input.addEventListener("input", function () {
        var v = input.value;
        set(v !== "" && isFinite(Number(v)) ? Number(v) : v);
      });
      return input;
    }
    if (info.type === "datetime") {
      var local = toLocalInput(current);
      if (local !== null || current === "" || current === null || current === undefined) {
        input = el("input", { type: "datetime-local", step: "1", className: "form-control form-control-sm", "aria-label": label, value: local || "", "data-builder-value": true });
        input.addEventListener("input", function () { set(fromLocalInput(input.value)); });
        return input;
      }
      /* a value with an explicit zone (e.g. from an import) stays editable as text */
      input = el("input", { type: "text", dir: "ltr", className: "form-control form-control-sm", "aria-label": label, value: String(current), placeholder: "YYYY-MM-DD HH:mm:ss", "data-builder-value": true });
      input.addEventListener("input", function () { set(input.value); });
      return input;
    }
    input = el("input", { type: "text", className: "form-control form-control-sm", "aria-label": label, value: current === null || current === undefined ? "" : String(current), "data-builder-value": true });
    input.addEventListener("input", function () { set(input.value); });
    return input;
  };

  Builder.prototype.renderValue = function (rule, info) {
    var s = this.s;
    if (NO_VALUE.indexOf(rule.operator) >= 0) return el("span", { className: "visually-hidden", text: "" });
    if (RANGE.indexOf(rule.operator) >= 0) {
      if (!Array.isArray(rule.value)) rule.value = ["", ""];
      /* two inputs side by side when there is room, one under the other on a phone */
      var low = this.valueInput(rule, info, 0, s.from);
      var high = this.valueInput(rule, info, 1, s.to);
      [low, high].forEach(function (input) { input.style.flex = "1 1 11rem"; input.style.minWidth = "0"; });
      return el("div", { className: "d-flex flex-wrap gap-1 align-items-center" }, [
        low, el("span", { className: "small text-body-secondary", "aria-hidden": "true", text: "–" }), high
      ]);
    }
    return this.valueInput(rule, info, null, s.value);
  };

  function initAll() {
    document.querySelectorAll("[data-cl-builder]").forEach(function (root) {
      if (root.clBuilder) return;
      root.clBuilder = new Builder(root);
    });
  }

  window.clConditionBuilder = { initAll: initAll, Builder: Builder };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
  document.addEventListener("htmx:afterSettle", initAll);
})();
