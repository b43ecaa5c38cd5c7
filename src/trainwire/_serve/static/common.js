// Shared helpers of the trainwire serve pages. Every piece of data from the server goes
// into the page through textContent or attribute setters, never through innerHTML.
"use strict";

const TW = (() => {
  const STATES = ["waiting", "running", "done", "error", "abnormal"];

  function el(tag, opts, children) {
    const node = document.createElement(tag);
    const o = opts || {};
    if (o.cls) node.className = o.cls;
    if (o.text !== undefined && o.text !== null) node.textContent = String(o.text);
    if (o.title) node.title = String(o.title);
    if (o.href) node.setAttribute("href", o.href);
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function safeState(state) {
    return STATES.includes(state) ? state : "unknown";
  }

  function badge(state) {
    return el("span", { cls: "badge state-" + safeState(state), text: state });
  }

  function setBadge(node, state) {
    node.className = "badge state-" + safeState(state);
    node.textContent = state;
  }

  function progressBar() {
    const fill = el("div", { cls: "fill" });
    const text = el("span", { cls: "pct-text", text: "–" });
    const bar = el("div", { cls: "bar" }, [el("div", { cls: "track" }, [fill]), text]);
    return bar;
  }

  function setProgress(bar, percentage, state) {
    const fill = bar.querySelector(".fill");
    const text = bar.querySelector(".pct-text");
    bar.className = "bar state-" + safeState(state);
    if (typeof percentage === "number" && isFinite(percentage)) {
      const pct = Math.max(0, Math.min(100, percentage));
      fill.style.width = pct + "%";
      text.textContent = pct.toFixed(1) + " %";
      bar.dataset.percentage = String(percentage);
    } else {
      fill.style.width = "0";
      text.textContent = "–";
      bar.dataset.percentage = "";
    }
  }

  function ago(iso) {
    if (!iso) return "–";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function localTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  // Time cells keep their ISO time in data-iso and are refreshed every second.
  function timeCell(node, iso) {
    node.dataset.iso = iso || "";
    node.textContent = ago(iso);
    node.title = localTime(iso);
  }

  setInterval(() => {
    for (const node of document.querySelectorAll("[data-iso]")) {
      node.textContent = ago(node.dataset.iso);
    }
  }, 1000);

  // Steps per second for people: "12.3 steps/s", "1 step / 40 s"; "–" when unknown.
  function rate(stepsPerSecond) {
    if (typeof stepsPerSecond !== "number" || !isFinite(stepsPerSecond)) return "–";
    if (stepsPerSecond >= 1 || stepsPerSecond === 0) return stepsPerSecond.toFixed(stepsPerSecond >= 100 ? 0 : 1) + " steps/s";
    return "1 step / " + duration(1 / stepsPerSecond);
  }

  // Seconds as "45 s", "12 min", "3 h 05 min", "2 d 4 h"; "–" when unknown.
  function duration(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  // Time left, counted down from the job's eta_at between two messages.
  function etaText(job) {
    if (!job.eta_at) return "–";
    return duration((Date.parse(job.eta_at) - Date.now()) / 1000) + " left";
  }

  function jobUrl(kind, id) {
    return "/jobs/" + encodeURIComponent(kind) + "/" + encodeURIComponent(id);
  }

  function apiUrl(kind, id, what) {
    return "/api" + jobUrl(kind, id) + (what ? "/" + what : "");
  }

  // An EventSource with a live/offline indicator; handlers: {eventName: fn(data)}.
  function stream(url, handlers) {
    const live = document.getElementById("live");
    const source = new EventSource(url);
    source.onopen = () => {
      live.textContent = "live";
      live.className = "live on";
    };
    source.onerror = () => {
      live.textContent = "reconnecting…";
      live.className = "live off";
    };
    for (const [name, fn] of Object.entries(handlers)) {
      source.addEventListener(name, (ev) => fn(JSON.parse(ev.data)));
    }
    return source;
  }

  // Call fn at most once per `ms`, always eventually after the last request.
  function throttle(fn, ms) {
    let timer = null;
    let again = false;
    return () => {
      if (timer) {
        again = true;
        return;
      }
      fn();
      timer = setTimeout(function tick() {
        timer = null;
        if (again) {
          again = false;
          fn();
          timer = setTimeout(tick, ms);
        }
      }, ms);
    };
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  return { el, clear, badge, setBadge, progressBar, setProgress, timeCell, jobUrl, apiUrl,
           stream, throttle, getJSON, localTime, rate, duration, etaText };
})();
