// Shared helpers of the pages. The session id is in the path (/s/<id>/...), the token in ?token=.
"use strict";
const Stream = (() => {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const parts = location.pathname.split("/");
  const sessionId = parts[1] === "s" ? decodeURIComponent(parts[2] || "") : "";

  const RETRIES = 30; // about 30 s of 503 + Retry-After before giving up (a node's lease is 10 s by default)

  async function api(path, options = {}, bearer = token) {
    const headers = Object.assign({}, options.headers || {}, { Authorization: `Bearer ${bearer}` });
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options = Object.assign({}, options, { body: JSON.stringify(options.json), method: options.method || "POST" });
    }
    let response = await fetch(path, Object.assign({}, options, { headers }));
    // 503 with Retry-After: with several server nodes, the node holding this session is being
    // replaced (it died; another takes the session over within its lease, docs/scale.md). Try again.
    for (let tries = 1; response.status === 503 && response.headers.get("Retry-After") && tries < RETRIES; tries++) {
      const wait = Math.min(10, Number(response.headers.get("Retry-After")) || 1);
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      response = await fetch(path, Object.assign({}, options, { headers }));
    }
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
