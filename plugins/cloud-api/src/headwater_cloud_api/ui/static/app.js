/* headwater UI: theme, live fragments (htmx-style polling), run page parts, logs by cursor. No dependencies. */
(function () {
  "use strict";
  var root = document.documentElement;
  var THEMES = ["auto", "light", "dark"];
  function applyTheme(t) { if (t === "auto") { delete root.dataset.theme; } else { root.dataset.theme = t; } }
  var saved = null;
  try { saved = localStorage.getItem("hw-theme"); } catch (e) { /* private mode */ }
  applyTheme(saved || "auto");

  function onReady(fn) { if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); } }

  function get(url, headers) {
    return fetch(url, { credentials: "same-origin", headers: headers || {}, cache: "no-store" }).then(function (r) {
      if (r.status === 401) { window.location.href = window.HW_PREFIX + "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("login"); }
      return r;
    });
  }

  function focusedInside(el) { var a = document.activeElement; return a && a !== document.body && el.contains(a) && /INPUT|TEXTAREA|SELECT/.test(a.tagName); }

  /* <main data-refresh="ms">: re-render the page's content in place (X-Fragment: main). */
  function refreshMain(main) {
    var every = parseInt(main.dataset.refresh, 10);
    var last = null;
    function tick() {
      if (document.hidden || focusedInside(main)) { return setTimeout(tick, every); }
      get(location.href, { "X-Fragment": "main" }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
        if (html !== null && html !== last) { if (last !== null) { main.innerHTML = html; bind(main); } last = html; }
      }).catch(function () {}).then(function () { setTimeout(tick, every); });
    }
    get(location.href, { "X-Fragment": "main" }).then(function (r) { return r.text(); }).then(function (h) { last = h; }).catch(function () {});
    setTimeout(tick, every);
  }

  /* The run page: poll the live endpoint; swap only the parts that changed (204 = nothing new). */
  function runLive(el) {
    var url = el.dataset.url, token = el.dataset.token, fast = 1000, slow = 4000;
    var finished = el.dataset.finished === "true";
    function tick() {
      if (document.hidden) { return setTimeout(tick, fast); }
      get(url + "?token=" + encodeURIComponent(token), { "Accept": "application/json" }).then(function (r) {
        if (r.status === 204 || !r.ok) { return null; }
        return r.json();
      }).then(function (d) {
        if (d) {
          token = d.token; finished = d.finished;
          Object.keys(d.parts).forEach(function (name) {
            document.querySelectorAll('[data-part="' + name + '"]').forEach(function (node) { node.innerHTML = d.parts[name]; bind(node); });
          });
          document.title = document.title.replace(/^\S+/, d.state);
          el.dataset.state = d.state;
        }
      }).catch(function () {}).then(function () { setTimeout(tick, finished ? slow : fast); });
    }
    setTimeout(tick, fast);
  }

  /* Logs: newest page first, older pages on demand, follow new records after the end cursor. */
  function logs(panel) {
    var url = panel.dataset.url;
    var box = panel.querySelector(".logs"), status = panel.querySelector(".logs-status");
    var level = panel.querySelector("[name=level]"), search = panel.querySelector("[name=q]"), follow = panel.querySelector("[name=follow]");
    var older = panel.querySelector("[data-older]");
    var start = null, end = null, generation = 0, timer = null, shown = 0;
    function params(extra) {
      var p = new URLSearchParams(extra);
      if (level.value) { p.set("level", level.value); }
      if (search.value) { p.set("q", search.value); }
      return url + "?" + p.toString();
    }
    function count(n) { shown += n; status.textContent = shown + " record" + (shown === 1 ? "" : "s") + (follow.checked ? " · following" : ""); }
    function atBottom() { return box.scrollHeight - box.scrollTop - box.clientHeight < 40; }
    function reset() {
      generation += 1; var mine = generation; shown = 0;
      get(params({ tail: "1" }), { "Accept": "application/json" }).then(function (r) { return r.json(); }).then(function (d) {
        if (mine !== generation) { return; }
        box.innerHTML = d.html || '<div class="empty small" data-empty>No log records' + (level.value || search.value ? " match the filter." : " yet.") + "</div>";
        start = d.start_cursor; end = d.end_cursor; count(d.count);
        older.classList.toggle("hidden", !d.has_more);
        box.scrollTop = box.scrollHeight;
      }).catch(function () {});
    }
    function poll() {
      var mine = generation;
      var q = end ? { after: end } : {};
      get(params(q), { "Accept": "application/json" }).then(function (r) { return r.json(); }).then(function (d) {
        if (mine !== generation || !d.count) { return; }
        var stick = follow.checked || atBottom();
        var empty = box.querySelector("[data-empty]"); if (empty) { empty.remove(); }
        box.insertAdjacentHTML("beforeend", d.html);
        end = d.end_cursor; if (!start) { start = d.start_cursor; } count(d.count);
        if (stick && follow.checked) { box.scrollTop = box.scrollHeight; }
      }).catch(function () {}).then(function () { timer = setTimeout(poll, 1000); });
    }
    older.addEventListener("click", function () {
      var mine = generation, height = box.scrollHeight;
      get(params({ before: start }), { "Accept": "application/json" }).then(function (r) { return r.json(); }).then(function (d) {
        if (mine !== generation) { return; }
        box.insertAdjacentHTML("afterbegin", d.html);
        start = d.start_cursor; count(d.count);
        older.classList.toggle("hidden", !d.has_more);
        box.scrollTop = box.scrollHeight - height;
      }).catch(function () {});
    });
    var debounce = null;
    search.addEventListener("input", function () { clearTimeout(debounce); debounce = setTimeout(reset, 250); });
    level.addEventListener("change", reset);
    follow.addEventListener("change", function () { if (follow.checked) { box.scrollTop = box.scrollHeight; } count(0); });
    reset();
    timer = setTimeout(poll, 1000);
  }

  function bind(scope) {
    scope.querySelectorAll("form[data-confirm]").forEach(function (f) {
      if (f.dataset.bound) { return; } f.dataset.bound = "1";
      f.addEventListener("submit", function (e) { if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); } });
    });
  }

  onReady(function () {
    window.HW_PREFIX = document.body.dataset.prefix || "/ui";
    var toggle = document.querySelector("[data-theme-toggle]");
    if (toggle) {
      var label = function () { toggle.textContent = "◐ " + (root.dataset.theme || "auto"); };
      label();
      toggle.addEventListener("click", function () {
        var next = THEMES[(THEMES.indexOf(root.dataset.theme || "auto") + 1) % THEMES.length];
        applyTheme(next); try { localStorage.setItem("hw-theme", next); } catch (e) { /* ignore */ }
        label();
      });
    }
    var main = document.querySelector("main[data-refresh]");
    if (main) { refreshMain(main); }
    document.querySelectorAll("[data-run-live]").forEach(runLive);
    document.querySelectorAll("[data-logs]").forEach(logs);
    bind(document);
  });
})();
