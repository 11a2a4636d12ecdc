// The console's only script: the live feed (server-sent events), the alarm board's sound
// and flash, acknowledgements, patching the poles table in place, and the lookout page's
// candidates and the poles' answers as they come.  No framework.
"use strict";
(() => {
  const page = document.body.dataset.page;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const liveBadge = document.getElementById("live");
  if (!liveBadge) return; // the login page
  const soundBtn = document.getElementById("sound");
  let soundOn = localStorage.getItem("console-sound") !== "off";
  const chime = new Audio("/alarm.wav");
  const showSound = () => { soundBtn.textContent = soundOn ? "sound: on" : "sound: off"; };
  soundBtn.addEventListener("click", () => {
    soundOn = !soundOn; localStorage.setItem("console-sound", soundOn ? "on" : "off"); showSound();
  });
  showSound();

  function alert_(id) {
    if (soundOn) chime.play().catch(() => { soundBtn.textContent = "sound: click to allow"; });
    const flash = document.getElementById("flash");
    if (flash) { flash.hidden = false; setTimeout(() => { flash.hidden = true; }, 3000); }
    document.title = "● ALARM · pole console";
    window.lastAlarm = id;
  }

  // A session that ended (idle, its absolute limit, a logout elsewhere) must be seen: a wall
  // board that chimes but can no longer fetch its rows would look alive and show nothing.
  let ended = false;
  function sessionEnded() {
    if (ended) return;
    ended = true;
    liveBadge.className = "live off";
    const note = document.createElement("div");
    note.id = "session-ended"; note.className = "flash"; note.setAttribute("role", "alert");
    note.textContent = "Your session has ended: log in again to see new alarms";
    document.body.prepend(note);
    setTimeout(() => { location.href = "/login?next=" + encodeURIComponent(location.pathname); }, 1500);
  }
  const get = async url => {
    const r = await fetch(url, { headers: { Accept: "text/html" } });
    if (r.status === 401) sessionEnded();
    return r;
  };

  // Alarm board: one fetch of the rendered rows per burst (coalesced), not per notice.
  let refreshTimer = null; const fresh = new Set();
  function refreshBoard() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      const r = await get("/alarms/rows");
      if (!r.ok) return;
      const keep = {};
      document.querySelectorAll(".alarm .result").forEach(el => { keep[el.closest(".alarm").dataset.id] = el.outerHTML; });
      document.getElementById("board").innerHTML = await r.text();
      for (const [id, html] of Object.entries(keep)) {
        const card = document.getElementById("alarm-" + id);
        if (card) card.querySelector(".result").outerHTML = html;
      }
      fresh.forEach(id => { const c = document.getElementById("alarm-" + id); if (c) c.classList.add("new"); });
      fresh.clear();
      const n = document.querySelectorAll(".alarm:not(.test)").length;
      document.getElementById("alarm-count").textContent = n ? String(n) : "";
    }, 250);
  }

  async function acknowledge(btn) {
    const card = btn.closest(".alarm"), out = card.querySelector(".result");
    btn.disabled = true; out.className = "result"; out.textContent = "sending bell-ack…";
    try {
      const r = await fetch(`/alarms/${encodeURIComponent(btn.dataset.id)}/ack`, {
        method: "POST", headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
      });
      if (r.status === 401) { sessionEnded(); return; }
      const body = await r.json();
      if (!r.ok) { out.className = "result bad"; out.textContent = body.error; btn.disabled = false; return; }
      const text = `pole answered: ${body.res}${body.why ? " (" + body.why + ")" : ""} · by ${body.by}`;
      out.className = "result " + (body.res === "ok" ? "ok" : "bad");
      out.textContent = text;
      const status = document.getElementById("ack-status");
      status.className = out.className;
      status.textContent = `${card.querySelector(".pole").firstChild.textContent.trim()}: bell-ack ${text}`;
      if (body.res !== "ok") btn.disabled = false;
      refreshBoard();
    } catch (e) { out.className = "result bad"; out.textContent = "request failed: " + e; btn.disabled = false; }
  }
  document.addEventListener("click", e => {
    const btn = e.target.closest("button.ack"); if (btn) acknowledge(btn);
  });

  // Poles: patch the row and the dot; the level's class makes it stand out.
  function poleStatus(d) {
    const row = document.getElementById("pole-" + d.dev);
    if (!row) { if (page === "poles") setTimeout(() => location.reload(), 1000); return; }
    const level = d.status === "online" ? (row.querySelector(".faults").textContent.trim() ? "fault" : "ok") : "offline";
    row.className = level;
    row.querySelector(".status").innerHTML = "";
    row.querySelector(".status").append(d.status, " ");
    if (d.why) { const s = document.createElement("small"); s.textContent = `(${d.why})`; row.querySelector(".status").append(s); }
    const dot = document.getElementById("dot-" + d.dev);
    if (dot) dot.setAttribute("class", "dot " + level);
  }
  const only = document.getElementById("only-problems");
  if (only) only.addEventListener("change", () => {
    document.querySelectorAll("#poles tbody tr").forEach(tr => tr.classList.toggle("hidden-row", only.checked && tr.className === "ok"));
  });

  // Lookout: re-fetch a rendered part of the page (at most once per 250 ms per part).
  const timers = {};
  function refreshPart(id, url) {
    if (timers[id]) return;
    timers[id] = setTimeout(async () => {
      timers[id] = null;
      const r = await get(url);
      if (!r.ok) return;
      const el = document.getElementById(id);
      const known = new Set([...el.querySelectorAll(".cand")].map(c => c.id));
      el.innerHTML = await r.text();
      el.querySelectorAll(".cand").forEach(c => { if (id === "grid" && known.size && !known.has(c.id)) c.classList.add("new"); });
      if (id === "grid") window.lastCandidates = el.querySelectorAll(".cand").length;
    }, 250);
  }
  function refreshGrid() {
    const look = document.getElementById("grid").dataset.look;
    refreshPart("grid", "/lookout/candidates" + (look ? "?look=" + encodeURIComponent(look) : ""));
  }
  function refreshStatus() { refreshPart("status", "/lookout/status"); }

  function connect() {
    const es = new EventSource("/live");
    es.onopen = () => {
      liveBadge.className = "live on";
      if (page === "lookout") refreshStatus(); // answers that came before the feed was open
    };
    es.onerror = () => {
      liveBadge.className = "live off";
      if (es.readyState === EventSource.CLOSED) sessionEnded(); // refused (401): no retry
    };
    es.addEventListener("session", () => { es.close(); sessionEnded(); });
    es.addEventListener("alarm", e => {
      const d = JSON.parse(e.data); fresh.add(d.id); alert_(d.id);
      if (page === "alarms") refreshBoard();
      else { const b = document.getElementById("alarm-count"); b.textContent = String((+b.textContent || 0) + 1); }
    });
    es.addEventListener("closed", () => { if (page === "alarms") refreshBoard(); });
    es.addEventListener("status", e => { if (page === "poles") poleStatus(JSON.parse(e.data)); });
    es.addEventListener("candidate", e => {
      if (page !== "lookout") return;
      const look = document.getElementById("grid").dataset.look, d = JSON.parse(e.data);
      if (!look || d.look === look) refreshGrid();
    });
    es.addEventListener("answer", () => { if (page === "lookout") refreshStatus(); });
    es.addEventListener("sent", () => { if (page === "lookout") refreshStatus(); });
    es.addEventListener("resync", () => {
      if (page === "lookout") { refreshGrid(); refreshStatus(); }
      else if (page === "alarms") refreshBoard();
      else if (page === "poles") location.reload();
    });
  }
  connect();
})();
