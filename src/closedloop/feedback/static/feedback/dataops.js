// Upload wizard, step 2: dim the inputs of columns that are not loaded, and the
// "load every column" box in the header.
(function () {
  "use strict";
  function sync(row) {
    var load = row.querySelector("input[data-load]");
    if (!load) { return; }
    row.classList.toggle("cl-off", !load.checked);
    row.querySelectorAll("input[type=text], select, input[name^=key-]").forEach(function (input) {
      input.disabled = !load.checked;
    });
  }
  document.querySelectorAll("tr[data-column-row]").forEach(function (row) {
    sync(row);
    row.addEventListener("change", function () { sync(row); });
  });
  document.querySelectorAll("input[data-toggle-all=load]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("tr[data-column-row]").forEach(function (row) {
        var load = row.querySelector("input[data-load]");
        if (load) { load.checked = box.checked; sync(row); }
      });
    });
  });
})();
