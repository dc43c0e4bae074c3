/* GraphiQL (vendored, see static/README.md) for GET /graphql: the query and variables are kept in the page's
 * address (?query=&variables=), so an explored query is a link one can share. Headers (an API key) are never put
 * in the address or stored. */
(function () {
  "use strict";
  var node = document.getElementById("graphiql");
  var params = new URLSearchParams(window.location.search);
  var DEFAULT = "# headwater's GraphQL API. Ctrl-Enter runs the query; the Docs button (top left) shows the schema.\n" +
    "{\n  projects {\n    name\n    flows { name version }\n  }\n}\n";
  function keep(name) {
    return function (value) {
      var p = new URLSearchParams(window.location.search);
      if (value) { p.set(name, value); } else { p.delete(name); }
      var q = p.toString();
      window.history.replaceState(null, "", window.location.pathname + (q ? "?" + q : ""));
    };
  }
  var fetcher = window.GraphiQL.createFetcher({
    url: node.getAttribute("data-endpoint") || "/graphql",
    fetch: function (url, options) { return window.fetch(url, Object.assign({ credentials: "same-origin" }, options || {})); }
  });
  var root = window.ReactDOM.createRoot(node);
  root.render(window.React.createElement(window.GraphiQL, {
    fetcher: fetcher,
    defaultQuery: DEFAULT,
    query: params.get("query") || undefined,
    variables: params.get("variables") || undefined,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: params.get("variables") ? true : false,
    onEditQuery: keep("query"),
    onEditVariables: keep("variables")
  }));
})();
