"use strict";
// Patient page: camera -> WebRTC (offer over HTTP, answer back) and the guided exercise protocol.
// The track sent is the camera's own, unmirrored picture; only the <video> preview is mirrored
// (CSS), so the server analyses with mirrored=False and the patient's left stays the patient's left.
(() => {
  const { api, el, sessionId } = Stream;
  const $ = (id) => document.getElementById(id);
  const base = `/api/s/${encodeURIComponent(sessionId)}`;
  let config = null, stream = null, step = -1, stepEnds = 0, ticker = null;
  window.pc = null;

  function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = `pill ${cls || text}`; }
  function showError(message) { const e = $("error"); e.hidden = !message; e.textContent = message || ""; }

  async function loadConfig() {
    config = await api(`${base}/config`);
    const list = $("protocol");
    config.protocol.forEach((ex) => list.append(el("li", { text: `${ex.title} (${ex.duration_s} s)` })));
  }

  function waitForIceGathering(pc) {
    // aiortc has no trickle ICE: send the offer with every candidate in it.
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", check); resolve(); } };
      pc.addEventListener("icegatheringstatechange", check);
      setTimeout(resolve, 3000); // candidates gathered so far are enough on a LAN
    });
  }

  async function connect() {
    showError("");
    $("connect").disabled = true;
    setStatus("connecting");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: false, video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30, max: 30 } } });
      $("preview").srcObject = stream;
      const pc = new RTCPeerConnection({ iceServers: config.ice_servers });
      window.pc = pc;
      stream.getVideoTracks().forEach((track) => pc.addTransceiver(track, { direction: "sendonly" }));
      pc.addEventListener("connectionstatechange", () => {
        const state = pc.connectionState;
        setStatus(state === "connected" ? "live" : state, state === "connected" ? "live" : state);
        $("start").disabled = state !== "connected" || step >= 0;
        if (state === "failed") showError("The connection failed. Check the network and press Connect again.");
      });
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc);
      const answer = await api(`${base}/offer`, { json: { sdp: pc.localDescription.sdp, type: pc.localDescription.type } });
      await pc.setRemoteDescription(answer);
      $("disconnect").disabled = false;
    } catch (e) {
      showError(`Could not connect: ${e.message}`);
      setStatus("disconnected");
      await disconnect(false);
    }
  }

  async function disconnect(tellServer = true) {
    stopProtocol(tellServer);
    if (window.pc) { window.pc.close(); window.pc = null; }
    if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
    if (tellServer) { try { await api(`${base}/hangup`, { method: "POST" }); } catch (e) { /* already gone */ } }
    $("connect").disabled = false; $("disconnect").disabled = true; $("start").disabled = true;
    setStatus("not connected", "");
  }

  function renderProtocol() {
    [...$("protocol").children].forEach((li, i) => { li.className = i === step ? "current" : (i < step ? "done" : ""); });
  }

  async function goTo(index) {
    step = index;
    renderProtocol();
    if (index >= config.protocol.length) {
      await api(`${base}/exercise`, { json: { action: "stop" } });
      finish("All exercises done. Thank you! You can disconnect.");
      return;
    }
    const ex = config.protocol[index];
    $("instruction").textContent = `${ex.title}: ${ex.instruction}`;
    stepEnds = performance.now() + ex.duration_s * 1000;
    await api(`${base}/exercise`, { json: { action: "start", exercise: ex.key } });
  }

  function tick() {
    const left = Math.max(0, (stepEnds - performance.now()) / 1000);
    $("timer").textContent = `${left.toFixed(0)} s`;
    if (left <= 0 && step >= 0 && step < config.protocol.length) goTo(step + 1);
  }

  function finish(message) {
    clearInterval(ticker); ticker = null;
    $("instruction").textContent = message; $("timer").textContent = "–";
    $("next").disabled = true; $("stop").disabled = true; $("start").disabled = !window.pc;
    step = -1; renderProtocol();
  }

  function stopProtocol(tellServer) {
    if (step < 0) return;
    if (tellServer) api(`${base}/exercise`, { json: { action: "stop" } }).catch(() => {});
    finish("Exercises stopped.");
  }

  $("connect").onclick = connect;
  $("disconnect").onclick = () => disconnect(true);
  $("start").onclick = async () => {
    $("start").disabled = true; $("next").disabled = false; $("stop").disabled = false;
    await goTo(0);
    ticker = setInterval(tick, 250);
  };
  $("next").onclick = () => goTo(step + 1);
  $("stop").onclick = () => stopProtocol(true);
  window.addEventListener("pagehide", () => { if (window.pc) window.pc.close(); }); // the server sees the peer close
  loadConfig().catch((e) => showError(`This link does not work: ${e.message}`));
})();
