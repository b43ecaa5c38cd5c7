// One job: its state, live progress, training graphs (uPlot) and recent messages.
"use strict";

(() => {
  const parts = location.pathname.split("/");
  const kind = decodeURIComponent(parts[2] || "");
  const id = decodeURIComponent(parts[3] || "");
  const PALETTE = ["#2f6fed", "#e8590c", "#12a150", "#9c36b5", "#d6336c", "#0c8599",
                   "#f59f00", "#495057", "#5c7cfa", "#94d82d"];

  document.title = id + " · trainwire serve";
  document.getElementById("job-kind").textContent = kind;
  document.getElementById("job-id").textContent = id;
  const stateSlot = document.getElementById("job-state");
  const stateBadge = TW.badge("waiting");
  stateSlot.appendChild(stateBadge);
  const bar = TW.progressBar();
  document.getElementById("job-progress").appendChild(bar);
  const stepNode = document.getElementById("job-step");
  const lastNode = document.getElementById("job-last");
  const appliedNode = document.getElementById("job-applied");
  const rateNode = document.getElementById("job-rate");
  const etaNode = document.getElementById("job-eta");
  const timelineNode = document.getElementById("job-timeline");
  let current = null;
  const messageBox = document.getElementById("job-message");
  const missing = document.getElementById("job-missing");
  const note = document.getElementById("graphs-note");

  function showJob(job) {
    missing.hidden = !!job;
    if (!job) return;
    TW.setBadge(stateBadge, job.state);
    TW.setProgress(bar, job.percentage, job.state);
    stepNode.textContent = job.step === null || job.step === undefined ? "–" : String(job.step);
    current = job;
    rateNode.textContent = TW.rate(job.steps_per_second);
    etaNode.textContent = TW.etaText(job);
    TW.timeCell(lastNode, job.last_message_at);
    appliedNode.textContent = String(job.applied);
    messageBox.hidden = !job.message;
    messageBox.textContent = job.message || "";
    if (!job.registered && charts.size === 0) {
      note.textContent = "This job is not registered, so the server does not know its " +
        "model_write_path: register its training config (trainwire jobs add CONFIG) to see its graphs.";
    }
    refreshMessages();
    if (job.state !== timelineState) refreshTimeline();
  }
  setInterval(() => {
    if (current) etaNode.textContent = TW.etaText(current);
  }, 1000);

  // -- the timeline of state changes
  let timelineState = null;
  async function loadTimeline() {
    try {
      const job = await TW.getJSON(TW.apiUrl(kind, id));
      timelineState = job.state;
      TW.clear(timelineNode);
      for (const change of job.timeline) {
        const at = TW.el("time", { text: TW.localTime(change.at) });
        const where = change.percentage === null ? "" :
          " · " + change.percentage.toFixed(1) + " % (step " + change.step + ")";
        const li = TW.el("li", {}, [at, TW.badge(change.state), TW.el("span", { text: where })]);
        li.dataset.state = change.state;
        timelineNode.appendChild(li);
      }
    } catch (err) {
      console.warn(err);
    }
  }
  const refreshTimeline = TW.throttle(loadTimeline, 1000);

  // -- graphs
  const chartsNode = document.getElementById("charts");
  const charts = new Map(); // file -> {card, plot, data, meta}

  function width(holder) {
    return Math.max(280, Math.floor(holder.getBoundingClientRect().width));
  }

  // Each plot follows the width of its card (window resizes, cards added beside it).
  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = charts.get(entry.target.dataset.file);
      const w = width(entry.target);
      if (chart && chart.plot.width !== w) chart.plot.setSize({ width: w, height: 260 });
    }
  });

  function createChart(graph) {
    const title = TW.el("h3", { text: graph.name });
    const meta = TW.el("div", { cls: "meta" });
    const holder = TW.el("div", { cls: "plot" });
    const card = TW.el("div", { cls: "chart" }, [title, meta, holder]);
    card.dataset.file = graph.file;
    // Keep the cards in file-name order.
    const after = [...chartsNode.children].find((c) => c.dataset.file > graph.file);
    chartsNode.insertBefore(card, after || null);
    const columns = graph.columns;
    const series = [{ label: columns[0] }];
    columns.slice(1).forEach((name, i) => {
      series.push({ label: name, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true });
    });
    const data = columns.map(() => []);
    holder.dataset.file = graph.file;
    const plot = new uPlot({
      width: width(holder),
      height: 260,
      scales: { x: { time: false } },
      series,
      axes: [{ label: columns[0] }, {}],
      cursor: { drag: { x: true, y: false } },
    }, data, holder);
    resizer.observe(holder);
    return { card, plot, data, meta, file: graph.file };
  }

  function addRows(chart, rows) {
    for (const row of rows) {
      for (let i = 0; i < chart.data.length; i++) chart.data[i].push(row[i] === undefined ? null : row[i]);
    }
  }

  function onGraph(graph) {
    note.textContent = "";
    let chart = charts.get(graph.file);
    const changedColumns = chart && chart.data.length !== graph.columns.length;
    if (chart && (graph.reset || changedColumns)) {
      resizer.unobserve(chart.card.querySelector(".plot"));
      chart.plot.destroy();
      chart.card.remove();
      charts.delete(graph.file);
      chart = null;
    }
    if (!chart) {
      chart = createChart(graph);
      charts.set(graph.file, chart);
    }
    addRows(chart, graph.rows);
    chart.plot.setData(chart.data);
    const points = chart.data[0].length;
    chart.card.dataset.points = String(points);
    chart.meta.textContent = points + " points · " + graph.file +
      (graph.skipped_rows ? " · " + graph.skipped_rows + " unreadable rows skipped" : "");
  }

  // -- recent messages
  const messagesBody = document.querySelector("#job-messages tbody");
  async function loadMessages() {
    try {
      const messages = await TW.getJSON(TW.apiUrl(kind, id, "messages") + "?limit=30");
      TW.clear(messagesBody);
      for (const m of messages) {
        const cls = m.rejected ? "outcome-rejected" : m.superseded ? "outcome-superseded" : "";
        const tr = TW.el("tr", {}, [
          TW.el("td", { cls: "time" }),
          TW.el("td", { text: m.status || "–" }),
          TW.el("td", { cls: "num", text: m.step === null ? "" : m.step }),
          TW.el("td", { cls: "num", text: m.percentage === null ? "" : m.percentage }),
          TW.el("td", { cls, text: m.superseded ? m.outcome + " (superseded)" : m.outcome }),
          TW.el("td", { cls: "detail", text: m.detail || "" }),
        ]);
        TW.timeCell(tr.firstChild, m.received_at);
        messagesBody.appendChild(tr);
      }
    } catch (err) {
      console.warn(err);
    }
  }
  const refreshMessages = TW.throttle(loadMessages, 2000);

  const query = "?kind=" + encodeURIComponent(kind) + "&id=" + encodeURIComponent(id);
  TW.stream("/api/events" + query, {
    snapshot: (data) => showJob(data.job),
    job: showJob,
    graph: onGraph,
  });
})();
