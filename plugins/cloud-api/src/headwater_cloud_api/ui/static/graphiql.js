/* A small GraphQL explorer for GET /graphql: schema docs from introspection, query, variables, result. No CDN. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var INTROSPECTION = "query { __schema { queryType { name } mutationType { name } types { name kind description " +
    "fields { name description args { name type { ...T } defaultValue } type { ...T } } inputFields { name type { ...T } } } } } " +
    "fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";
  var types = {}, roots = [];
  try { $("gq-key").value = sessionStorage.getItem("hw-gq-key") || ""; $("gq-query").value = localStorage.getItem("hw-gq-query") || $("gq-query").value; } catch (e) { /* ignore */ }

  function headers() {
    var h = { "Content-Type": "application/json", "Accept": "application/json" };
    var key = $("gq-key").value.trim();
    if (key) { h.Authorization = "Bearer " + key; }
    return h;
  }
  function post(query, variables) {
    return fetch("/graphql", { method: "POST", headers: headers(), credentials: "same-origin",
      body: JSON.stringify({ query: query, variables: variables || {} }) }).then(function (r) {
      return r.text().then(function (t) { var body; try { body = JSON.parse(t); } catch (e) { body = t; } return { status: r.status, body: body }; });
    });
  }
  function typeName(t) {
    if (!t) { return ""; }
    if (t.kind === "NON_NULL") { return typeName(t.ofType) + "!"; }
    if (t.kind === "LIST") { return "[" + typeName(t.ofType) + "]"; }
    return t.name;
  }
  function base(t) { while (t && t.ofType) { t = t.ofType; } return t ? t.name : ""; }
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function render(filter) {
    var out = [];
    var names = roots.concat(Object.keys(types).filter(function (n) { return roots.indexOf(n) < 0 && n.indexOf("__") !== 0 && (types[n].fields || types[n].inputFields); }).sort());
    names.forEach(function (name) {
      var t = types[name]; var fields = t.fields || t.inputFields || [];
      var shown = fields.filter(function (f) { return !filter || (name + " " + f.name).toLowerCase().indexOf(filter) >= 0; });
      if (!shown.length) { return; }
      out.push('<div class="gq-type" id="gq-t-' + esc(name) + '">' + esc(name) + (t.kind === "INPUT_OBJECT" ? " (input)" : "") + "</div>");
      shown.forEach(function (f) {
        var args = (f.args || []).map(function (a) { return esc(a.name) + ": " + esc(typeName(a.type)); }).join(", ");
        out.push('<div class="gq-field">' + esc(f.name) + (args ? '<span class="arg">(' + args + ")</span>" : "") +
          ': <span class="ty" data-type="' + esc(base(f.type)) + '">' + esc(typeName(f.type)) + "</span>" +
          (f.description ? '<div class="gq-desc">' + esc(f.description) + "</div>" : "") + "</div>");
      });
    });
    $("gq-docs").innerHTML = out.join("") || "Nothing matches.";
    $("gq-docs").classList.remove("muted");
  }
  function loadSchema() {
    post(INTROSPECTION).then(function (r) {
      if (!r.body || !r.body.data) { $("gq-docs").textContent = "The schema could not be loaded: " + JSON.stringify(r.body && r.body.errors || r.body) + (r.status === 401 ? " Enter an API key above." : ""); return; }
      var s = r.body.data.__schema; types = {};
      s.types.forEach(function (t) { types[t.name] = t; });
      roots = [s.queryType && s.queryType.name, s.mutationType && s.mutationType.name].filter(Boolean);
      render("");
    }).catch(function (e) { $("gq-docs").textContent = "The schema could not be loaded: " + e; });
  }
  function run() {
    var vars = {};
    try { vars = JSON.parse($("gq-vars").value || "{}"); } catch (e) { $("gq-result").textContent = "Variables are not valid JSON: " + e.message; return; }
    try { localStorage.setItem("hw-gq-query", $("gq-query").value); sessionStorage.setItem("hw-gq-key", $("gq-key").value); } catch (e) { /* ignore */ }
    var t0 = performance.now();
    $("gq-status").textContent = "running…";
    post($("gq-query").value, vars).then(function (r) {
      $("gq-status").textContent = "HTTP " + r.status + " · " + Math.round(performance.now() - t0) + " ms";
      $("gq-result").textContent = typeof r.body === "string" ? r.body : JSON.stringify(r.body, null, 2);
    }).catch(function (e) { $("gq-result").textContent = String(e); });
  }
  function pretty() {
    var q = $("gq-query").value, out = "", depth = 0, i, c;
    q = q.replace(/\s+/g, " ").trim();
    for (i = 0; i < q.length; i++) {
      c = q[i];
      if (c === "{") { depth++; out = out.replace(/ $/, "") + " {\n" + "  ".repeat(depth); }
      else if (c === "}") { depth = Math.max(0, depth - 1); out = out.replace(/\s+$/, "") + "\n" + "  ".repeat(depth) + "}"; }
      else if (c === " " && /[{\n ]$/.test(out)) { continue; }
      else if (c === " " && depth > 0 && !/[(:,]$/.test(out) && !/^[^()]*\)/.test(q.slice(i)) ) { out += "\n" + "  ".repeat(depth); }
      else { out += c; }
    }
    $("gq-query").value = out.trim() + "\n";
  }
  document.addEventListener("DOMContentLoaded", function () {
    $("gq-run").addEventListener("click", run);
    $("gq-pretty").addEventListener("click", pretty);
    $("gq-filter").addEventListener("input", function () { render(this.value.toLowerCase()); });
    $("gq-key").addEventListener("change", loadSchema);
    $("gq-docs").addEventListener("click", function (e) {
      var ty = e.target.dataset && e.target.dataset.type; var el = ty && document.getElementById("gq-t-" + ty);
      if (el) { el.scrollIntoView({ behavior: "smooth" }); }
    });
    document.addEventListener("keydown", function (e) { if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); } });
    $("gq-query").addEventListener("keydown", function (e) {
      if (e.key === "Tab") { e.preventDefault(); var s = this.selectionStart; this.value = this.value.slice(0, s) + "  " + this.value.slice(this.selectionEnd); this.selectionStart = this.selectionEnd = s + 2; }
    });
    loadSchema();
  });
})();
