// Progressive enhancement of the DNS record form (templates/panel/dns/_record_form.html):
// only the chosen type's inputs are shown. Without this script every input is shown,
// marked with the types that use it, and the server reads only the chosen type's.
(function () {
  "use strict";
  function follow(form) {
    var select = form.querySelector("select[name=type]");
    if (!select) { return; }
    function show() {
      form.querySelectorAll("[data-types]").forEach(function (el) {
        el.hidden = el.dataset.types.split(" ").indexOf(select.value) < 0;
      });
    }
    form.querySelectorAll("[data-no-js]").forEach(function (el) { el.hidden = true; });
    select.addEventListener("change", show);
    show();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-record-form]").forEach(follow);
  });
})();
