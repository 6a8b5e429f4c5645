"use strict";
(() => {
  const { api, el } = Stream;
  const key = () => document.getElementById("admin-key").value.trim();
  const links = document.getElementById("links");

  function showLink(title, url) {
    links.append(el("p", {}, el("strong", { text: title + ": " }), el("a", { href: url, target: "_blank", rel: "noopener" }, el("code", { text: url }))));
  }

  document.getElementById("create").onclick = async () => {
    links.textContent = "";
    try {
      const s = await api("/api/sessions", { json: { label: document.getElementById("label").value } }, key());
      showLink("Patient link (send to the patient)", s.patient_url);
      showLink("Clinician link (dashboard)", s.clinician_url);
      load();
    } catch (e) { links.textContent = `Could not create a session: ${e.message}`; }
  };

  async function load() {
    const body = document.querySelector("#sessions tbody");
    body.textContent = "";
    let list;
    try { list = (await api("/api/sessions", {}, key())).sessions; } catch (e) { body.append(el("tr", {}, el("td", { text: e.message }))); return; }
    for (const s of list) {
      const button = el("button", { class: "secondary", text: "New clinician link" });
      button.onclick = async () => {
        const r = await api(`/api/sessions/${encodeURIComponent(s.id)}/clinician-link`, { method: "POST" }, key());
        links.textContent = "";
        showLink(`Clinician link for ${s.label || s.id}`, r.clinician_url);
      };
      body.append(el("tr", {},
        el("td", { text: new Date(s.created_at * 1000).toLocaleString() }), el("td", { text: s.label }),
        el("td", {}, el("span", { class: `pill ${s.status}`, text: s.status })), el("td", { text: String(s.n_keyframes) }),
        el("td", {}, button)));
    }
  }
  document.getElementById("load").onclick = load;
})();
