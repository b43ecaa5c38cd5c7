// The job list: one page of jobs (filters, order, cursor pages from /api/jobs), its rows
// updated in place from the event stream.
"use strict";

(() => {
  const tbody = document.querySelector("#jobs tbody");
  const empty = document.getElementById("empty");
  const rows = new Map(); // "kind\u0000id" -> {tr, cells}

  function key(job) {
    return job.kind + "\u0000" + job.id;
  }

  function makeRow(job) {
    const link = TW.el("a", { text: job.id, href: TW.jobUrl(job.kind, job.id) });
    const cells = {
      kind: TW.el("td", { cls: "kind", text: job.kind }),
      id: TW.el("td", { cls: "id" }, [link]),
      state: TW.el("td", { cls: "state" }, [TW.badge(job.state)]),
      progress: TW.el("td", { cls: "progress" }, [TW.progressBar()]),
      step: TW.el("td", { cls: "num step" }),
      rate: TW.el("td", { cls: "num rate" }),
      eta: TW.el("td", { cls: "eta" }),
      time: TW.el("td", { cls: "time" }),
      message: TW.el("td", { cls: "msg" }),
    };
    const tr = TW.el("tr", {}, Object.values(cells));
    tr.dataset.kind = job.kind;
    tr.dataset.id = job.id;
    return { tr, cells };
  }

  function show(row, job) {
    const c = row.cells;
    row.job = job;
    row.tr.dataset.state = job.state;
    TW.setBadge(c.state.firstChild, job.state);
    TW.setProgress(c.progress.firstChild, job.percentage, job.state);
    c.step.textContent = job.step === null || job.step === undefined ? "–" : String(job.step);
    c.rate.textContent = TW.rate(job.steps_per_second);
    c.eta.textContent = TW.etaText(job);
    TW.timeCell(c.time, job.last_message_at);
    c.message.textContent = job.message || "";
  }

  setInterval(() => {
    for (const row of rows.values()) if (row.job) row.cells.eta.textContent = TW.etaText(row.job);
  }, 1000);

  // -- the page of jobs: filters, order and cursor pages come from /api/jobs
  const PAGE = 50;
  const STATES = ["running", "waiting", "abnormal", "error", "done"];
  const stateFilter = document.getElementById("state-filter");
  const kindFilter = document.getElementById("kind-filter");
  const search = document.getElementById("search");
  const projectKey = document.getElementById("project-key");
  const sort = document.getElementById("sort");
  const prev = document.getElementById("prev");
  const next = document.getElementById("next");
  const pageInfo = document.getElementById("page-info");
  const jobsTotal = document.getElementById("jobs-total");
  let state = ""; // "" = every state
  let cursors = [""]; // the cursor of each page up to the one shown
  let nextCursor = null;

  function filters() {
    const params = new URLSearchParams();
    if (kindFilter.value) params.set("kind", kindFilter.value);
    if (search.value.trim()) params.set("q", search.value.trim());
    if (projectKey.value.trim()) params.set("project_key", projectKey.value.trim());
    return params;
  }

  function showCountsPerState(counts) {
    TW.clear(stateFilter);
    const entries = [["", counts.total], ...STATES.map((s) => [s, counts.states[s] || 0])];
    for (const [value, n] of entries) {
      const button = TW.el("button", { text: (value || "all") + " " + n });
      button.type = "button";
      button.dataset.state = value || "all";
      button.className = value === state ? "on" : "";
      button.addEventListener("click", () => {
        state = value;
        restart();
      });
      stateFilter.appendChild(TW.el("li", {}, [button]));
    }
    jobsTotal.textContent = "(" + counts.total + ")";
  }

  async function load() {
    const params = filters();
    const counts = TW.getJSON("/api/jobs/counts?" + params);
    if (state) params.set("state", state);
    params.set("sort", sort.value);
    params.set("limit", String(PAGE));
    const cursor = cursors[cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    try {
      const response = await fetch("/api/jobs?" + params, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("/api/jobs: HTTP " + response.status);
      nextCursor = response.headers.get("X-Next-Cursor");
      replaceAll(await response.json());
      showCountsPerState(await counts);
    } catch (err) {
      console.warn(err);
    }
    prev.disabled = cursors.length < 2;
    next.disabled = !nextCursor;
    pageInfo.textContent = "page " + cursors.length;
  }
  const reload = TW.throttle(load, 2000);

  function restart() {
    cursors = [""];
    load();
  }

  for (const input of [kindFilter, sort]) input.addEventListener("change", restart);
  for (const input of [search, projectKey]) input.addEventListener("input", TW.throttle(restart, 400));
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    load();
  });
  prev.addEventListener("click", () => {
    if (cursors.length < 2) return;
    cursors.pop();
    load();
  });

  // A change to a row on the page updates it in place; any other change may move rows
  // into or out of the page, so the page and its counts are read again (at most every 2 s).
  function update(job) {
    const row = rows.get(key(job));
    if (row) show(row, job);
    reload();
  }

  function replaceAll(jobs) {
    TW.clear(tbody);
    rows.clear();
    for (const job of jobs) {
      const row = makeRow(job);
      rows.set(key(job), row);
      tbody.appendChild(row.tr);
      show(row, job);
    }
    empty.hidden = rows.size > 0 || cursors.length > 1 || !!(state || filters().toString());
  }

  // -- ignored messages
  const ignoredBody = document.querySelector("#ignored tbody");
  const countsList = document.getElementById("ignored-counts");
  const total = document.getElementById("ignored-total");

  function showCounts(counts) {
    TW.clear(countsList);
    let sum = 0;
    for (const [reason, n] of Object.entries(counts).sort()) {
      sum += n;
      countsList.appendChild(TW.el("li", { text: reason + ": " + n }));
    }
    total.textContent = sum ? "(" + sum + ")" : "(none)";
  }

  async function loadIgnored() {
    try {
      const data = await TW.getJSON("/api/rejected?limit=25");
      showCounts(data.counts);
      TW.clear(ignoredBody);
      for (const m of data.messages) {
        const job = m.id ? TW.el("a", { text: m.id, href: TW.jobUrl(m.kind, m.id) }) : TW.el("span", { text: "–" });
        const tr = TW.el("tr", {}, [
          TW.el("td", { cls: "time", title: TW.localTime(m.received_at) }),
          TW.el("td", { cls: "outcome-rejected", text: m.outcome }),
          TW.el("td", {}, [job]),
          TW.el("td", { cls: "detail", text: m.detail || "" }),
          TW.el("td", { cls: "body", text: m.body || "" }),
        ]);
        TW.timeCell(tr.firstChild, m.received_at);
        ignoredBody.appendChild(tr);
      }
    } catch (err) {
      console.warn(err);
    }
  }
  const refreshIgnored = TW.throttle(loadIgnored, 1000);

  TW.stream("/api/events?list=0", {
    snapshot: (data) => {
      load();
      showCounts(data.rejected);
      refreshIgnored();
    },
    job: update,
    rejected: (counts) => {
      showCounts(counts);
      refreshIgnored();
    },
  });
})();
