// Shared helpers of the pages. The session id is in the path (/s/<id>/...), the token in ?token=.
"use strict";
const Stream = (() => {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const parts = location.pathname.split("/");
  const sessionId = parts[1] === "s" ? decodeURIComponent(parts[2] || "") : "";

  async function api(path, options = {}, bearer = token) {
    const headers = Object.assign({}, options.headers || {}, { Authorization: `Bearer ${bearer}` });
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options = Object.assign({}, options, { body: JSON.stringify(options.json), method: options.method || "POST" });
    }
    const response = await fetch(path, Object.assign({}, options, { headers }));
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
    if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
    return body;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  const fmt = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toFixed(digits);
  return { token, sessionId, api, el, fmt };
})();
