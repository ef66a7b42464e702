// Progressive enhancement only: every form works without this file.
// A NIK typed into a field marked data-nik-check is explained by the console's server (lokal-id, the
// library intake checks with); no NIK rule lives here. The NIK travels in a POST body, never a URL.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function sibling(input, suffix) {
    var row = input.getAttribute("data-row");
    if (row === null) { return ""; }
    var el = document.getElementById("f-members-" + row + "-" + suffix);
    return el ? el.value : "";
  }

  function show(input, kind, text) {
    var out = document.getElementById(input.id + "-msg");
    if (!out) { return; }
    out.textContent = text;
    out.className = "msg" + (kind ? " is-" + kind : "");
    if (kind === "error") { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
  }

  function check(input) {
    var nik = input.value.replace(/\s+/g, "");
    if (nik.length === 0) { show(input, "", ""); return; }
    if (nik.length < 16 && document.activeElement === input) { show(input, "", ""); return; }
    fetch("/api/nik-check", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify({nik: nik, birth_date: sibling(input, "birth_date"), sex: sibling(input, "sex")})
    }).then(function (r) { return r.ok ? r.json() : null; }).then(function (v) {
      if (!v) { return; }
      if (!v.valid) { show(input, "error", v.errors.join(" ")); }
      else if (v.warnings.length) { show(input, "warn", v.summary + " " + v.warnings.join(" ")); }
      else { show(input, "ok", v.summary); }
    }).catch(function () { /* the server checks again on submit */ });
  }

  var timers = new WeakMap();
  document.querySelectorAll("input[data-nik-check]").forEach(function (input) {
    input.addEventListener("input", function () {
      clearTimeout(timers.get(input));
      timers.set(input, setTimeout(function () { check(input); }, 250));
    });
    input.addEventListener("blur", function () { check(input); });
    var row = input.getAttribute("data-row");
    if (row !== null) {
      ["birth_date", "sex"].forEach(function (suffix) {
        var other = document.getElementById("f-members-" + row + "-" + suffix);
        if (other) { other.addEventListener("change", function () { if (input.value) { check(input); } }); }
      });
    }
  });
})();

// A round's live numbers: the page's own fragment (same origin, connect-src 'self') fetched again every few
// seconds; it carries the previous sample so the server can tell the rate. Without this the page has a link.
(function () {
  "use strict";
  var box = document.querySelector("[data-live-url]");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-live-url");
  var every = 3000;

  function sample() {
    var inner = box.querySelector("[data-sample]");
    return inner ? inner.getAttribute("data-sample") : "";
  }

  function done() {
    var inner = box.querySelector("[data-done]");
    return inner !== null && inner.getAttribute("data-done") === "1";
  }

  function tick() {
    fetch(url + "?prev=" + encodeURIComponent(sample()), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) { box.innerHTML = html; }
        if (!done()) { setTimeout(tick, every); }
      })
      .catch(function () { setTimeout(tick, every * 2); });
  }

  if (!done()) { setTimeout(tick, every); }
})();
