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
      const patient = document.getElementById("session-patient").value;
      const s = await api("/api/sessions", { json: { label: document.getElementById("label").value, patient } }, key());
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
  // patients (stream/server/patients.py): create, list, history links, choose one for a new session
  document.getElementById("create-patient").onclick = async () => {
    links.textContent = "";
    try {
      const p = await api("/api/patients", { json: { code: document.getElementById("patient-code-new").value,
        label: document.getElementById("patient-label-new").value } }, key());
      showLink(`History of ${p.code} (clinician link)`, p.history_url);
      loadPatients();
    } catch (e) { links.textContent = `Could not create the patient: ${e.message}`; }
  };

  async function loadPatients() {
    const body = document.querySelector("#patients tbody");
    const select = document.getElementById("session-patient");
    body.textContent = "";
    let list;
    try { list = (await api("/api/patients", {}, key())).patients; } catch (e) { body.append(el("tr", {}, el("td", { text: e.message }))); return; }
    const chosen = select.value;
    select.textContent = "";
    select.append(el("option", { value: "", text: "no patient" }));
    for (const p of list) {
      select.append(el("option", { value: p.code, text: p.label ? `${p.code} (${p.label})` : p.code }));
      const button = el("button", { class: "secondary", text: "History link" });
      button.onclick = async () => {
        const r = await api(`/api/patients/${encodeURIComponent(p.code)}/link`, { method: "POST" }, key());
        links.textContent = "";
        showLink(`History of ${p.code} (clinician link)`, r.history_url);
      };
      body.append(el("tr", {}, el("td", { text: p.code }), el("td", { text: p.label }), el("td", { text: String(p.n_sessions) }),
        el("td", { text: p.last_session_at ? new Date(p.last_session_at * 1000).toLocaleString() : "–" }), el("td", {}, button)));
    }
    select.value = chosen;
  }
  document.getElementById("load").onclick = () => { load(); loadPatients(); };
})();
