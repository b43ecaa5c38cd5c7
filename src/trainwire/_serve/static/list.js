// The job list: one row per job, updated in place from the event stream.
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

  function update(job) {
    let row = rows.get(key(job));
    if (!row) {
      row = makeRow(job);
      rows.set(key(job), row);
      tbody.insertBefore(row.tr, tbody.firstChild); // newest first
    }
    const c = row.cells;
    row.tr.dataset.state = job.state;
    TW.setBadge(c.state.firstChild, job.state);
    TW.setProgress(c.progress.firstChild, job.percentage, job.state);
    c.step.textContent = job.step === null || job.step === undefined ? "–" : String(job.step);
    row.job = job;
    c.rate.textContent = TW.rate(job.steps_per_second);
    c.eta.textContent = TW.etaText(job);
    TW.timeCell(c.time, job.last_message_at);
    c.message.textContent = job.message || "";
    empty.hidden = rows.size > 0;
  }

  setInterval(() => {
    for (const row of rows.values()) if (row.job) row.cells.eta.textContent = TW.etaText(row.job);
  }, 1000);

  function replaceAll(jobs) {
    TW.clear(tbody);
    rows.clear();
    // The server sends newest first; insert oldest first so that the newest ends on top.
    for (const job of jobs.slice().reverse()) update(job);
    empty.hidden = rows.size > 0;
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

  TW.stream("/api/events", {
    snapshot: (data) => {
      replaceAll(data.jobs);
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
