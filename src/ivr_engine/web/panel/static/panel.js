// The little JavaScript of the panel: live fragments (server-sent events) and running clocks.
// Every page works without it; with it, lists refresh themselves and durations tick.
"use strict";

// <section data-live-src="/panel/live/calls" data-live-events="/panel/events">: on each
// "change" event the section's content is fetched again and swapped in place.
function startLive(section) {
  const events = new EventSource(section.dataset.liveEvents);
  let busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const resp = await fetch(section.dataset.liveSrc, {headers: {"X-Requested-With": "fetch"}});
      if (resp.ok) {
        const focused = document.activeElement && document.activeElement.id;
        section.innerHTML = await resp.text();
        section.dataset.refreshed = String(Number(section.dataset.refreshed || 0) + 1);
        if (focused) { const el = document.getElementById(focused); if (el) el.focus(); }
        tick();
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  events.addEventListener("change", refresh);
  events.addEventListener("open", () => { section.dataset.live = "open"; });
  events.addEventListener("error", () => { section.dataset.live = "reconnecting"; });
}

// <time data-since="ISO" data-server-now="ISO">: shows the time elapsed since then, m:ss,
// corrected for the difference between the server's clock and this one.
let skew = 0;
function tick() {
  for (const el of document.querySelectorAll("[data-since]")) {
    const since = Date.parse(el.dataset.since);
    const seconds = Math.max(0, Math.floor((Date.now() - skew - since) / 1000));
    const h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    el.textContent = (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }
}

// <form data-confirm="Are you sure?">: asks before submitting (the server asks too).
function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => { if (!confirm(form.dataset.confirm)) e.preventDefault(); });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const now = document.body.dataset.serverNow;
  if (now) skew = Date.now() - Date.parse(now);
  for (const section of document.querySelectorAll("[data-live-src]")) startLive(section);
  confirmForms();
  tick();
  setInterval(tick, 1000);
});
