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
  const charts = new Map(); // file -> {card, holder, plot, data, columns, stats, statsBody}
  const slider = document.getElementById("smoothing");
  const sliderValue = document.getElementById("smoothing-value");
  const SMOOTHING_KEY = "trainwire.serve.smoothing";

  function storedSmoothing() {
    let value = NaN;
    try {
      value = parseFloat(localStorage.getItem(SMOOTHING_KEY));
    } catch (err) {
      // storage refused (private mode, a policy): smoothing starts off
    }
    return isFinite(value) && value > 0 && value < 1 ? value : 0;
  }
  let smoothing = storedSmoothing();

  // TensorBoard's smoothing: an exponential moving average, debiased so that the first
  // points are not pulled towards 0; a gap stays a gap and leaves the average as it was.
  function ema(values, weight) {
    const out = [];
    let last = 0;
    let count = 0;
    for (const v of values) {
      if (v === null || !isFinite(v)) {
        out.push(null);
        continue;
      }
      last = last * weight + (1 - weight) * v;
      count += 1;
      out.push(last / (1 - Math.pow(weight, count)));
    }
    return out;
  }

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

  // What the plot draws: x, then with smoothing each line's raw values (faint, behind)
  // and each smoothed line; without, the raw lines alone.
  function plotData(chart) {
    const ys = chart.data.slice(1);
    if (!smoothing) return chart.data;
    return [chart.data[0], ...ys, ...ys.map((column) => ema(column, smoothing))];
  }

  function plotSeries(columns) {
    const series = [{ label: columns[0] }];
    const line = (name, i, faint) => ({
      label: faint ? name + " · raw" : name,
      stroke: PALETTE[i % PALETTE.length] + (faint ? "40" : ""),
      width: faint ? 1 : 1.5,
      spanGaps: true,
    });
    if (smoothing) columns.slice(1).forEach((name, i) => series.push(line(name, i, true)));
    columns.slice(1).forEach((name, i) => series.push(line(name, i, false)));
    return series;
  }

  // The y axis as wide as its longest label ("15,000", "-0.00125"), not a fixed 50 px.
  function axisSize(u, values) {
    const longest = Math.max(0, ...(values || []).map((v) => String(v).length));
    return Math.max(50, 24 + 7 * longest);
  }

  function buildPlot(chart) {
    if (chart.plot) chart.plot.destroy();
    chart.smoothed = !!smoothing;
    chart.plot = new uPlot({
      width: width(chart.holder),
      height: 260,
      scales: { x: { time: false } },
      series: plotSeries(chart.columns),
      axes: [{ label: chart.columns[0] }, { size: axisSize }],
      cursor: { drag: { x: true, y: false } },
    }, plotData(chart), chart.holder);
    chart.holder.uplot = chart.plot; // what the browser tests read the drawn points from
    chart.card.dataset.smoothing = String(smoothing);
  }

  function redraw(chart) {
    if (chart.smoothed !== !!smoothing) buildPlot(chart);
    else chart.plot.setData(plotData(chart));
    chart.card.dataset.smoothing = String(smoothing);
    showStats(chart);
  }

  function csvLink(graph) {
    const href = TW.apiUrl(kind, id, "metrics/" + encodeURIComponent(graph.name) + ".csv");
    const link = TW.el("a", { cls: "csv", text: "CSV", href, title: "download this graph's rows as CSV" });
    link.setAttribute("download", graph.name + ".csv");
    return link;
  }

  function statsTable(columns) {
    const head = TW.el("tr", {}, ["", "last", "min", "max", "smoothed"].map(
      (text, i) => TW.el("th", { cls: i ? "num " + text : "", text })));
    const body = TW.el("tbody");
    columns.slice(1).forEach((name, i) => {
      const marker = TW.el("span", { cls: "swatch" });
      marker.style.background = PALETTE[i % PALETTE.length];
      const tr = TW.el("tr", {}, [TW.el("td", { cls: "series" }, [marker, TW.el("span", { text: name })])]);
      for (const what of ["last", "min", "max", "smoothed"]) {
        const td = TW.el("td", { cls: "num " + what, text: "–" });
        tr.appendChild(td);
      }
      body.appendChild(tr);
    });
    return { table: TW.el("table", { cls: "stats" }, [TW.el("thead", {}, [head]), body]), body };
  }

  function number(v) {
    if (typeof v !== "number" || !isFinite(v)) return "–";
    return Number.isInteger(v) ? String(v) : String(parseFloat(v.toPrecision(6)));
  }

  // Last, min and max come from the server, over every row of the file (the drawn
  // points may be thinned); the smoothed value is the last point of the smoothed line.
  function showStats(chart) {
    chart.card.classList.toggle("smoothed", !!smoothing);
    [...chart.statsBody.children].forEach((tr, i) => {
      const stats = chart.stats[i] || {};
      for (const what of ["last", "min", "max"]) {
        const td = tr.querySelector("." + what);
        td.textContent = number(stats[what]);
        td.dataset.value = stats[what] === null || stats[what] === undefined ? "" : String(stats[what]);
      }
      const smoothed = smoothing ? ema(chart.data[i + 1], smoothing).filter((v) => v !== null) : [];
      const td = tr.querySelector(".smoothed");
      td.textContent = smoothed.length ? number(smoothed[smoothed.length - 1]) : "–";
      td.dataset.value = smoothed.length ? String(smoothed[smoothed.length - 1]) : "";
    });
  }

  function createChart(graph) {
    const title = TW.el("h3", { text: graph.name });
    const meta = TW.el("div", { cls: "meta" });
    const holder = TW.el("div", { cls: "plot" });
    const { table, body } = statsTable(graph.columns);
    const head = TW.el("div", { cls: "chart-head" }, [title, csvLink(graph)]);
    const card = TW.el("div", { cls: "chart" }, [head, meta, holder, table]);
    card.dataset.file = graph.file;
    // Keep the cards in file-name order.
    const after = [...chartsNode.children].find((c) => c.dataset.file > graph.file);
    chartsNode.insertBefore(card, after || null);
    holder.dataset.file = graph.file;
    const chart = { card, holder, meta, plot: null, file: graph.file, columns: graph.columns,
                    data: graph.columns.map(() => []), stats: [], statsBody: body };
    buildPlot(chart);
    resizer.observe(holder);
    return chart;
  }

  function addRows(chart, rows) {
    for (const row of rows) {
      for (let i = 0; i < chart.data.length; i++) chart.data[i].push(row[i] === undefined ? null : row[i]);
    }
  }

  // The rows the server sends per graph and update at most: MAX_POINTS, fewer for a graph
  // wider than MAX_CELLS allows (both as in _graphs.py; tests/test_serve_graph_cap.py keeps
  // them equal). A chart holds at most twice that, so a page left open on a long run stays
  // bounded: past it, the chart is thinned to at most the server's limit.
  const MAX_POINTS = 4000;
  const MAX_CELLS = 100000;
  function rowLimit(chart) {
    return Math.max(8, Math.min(MAX_POINTS, Math.floor(MAX_CELLS / chart.data.length)));
  }

  // The indexes of the minimum and maximum of column[begin:end], gaps left out (-1: none).
  function extremes(column, begin, end) {
    let low = -1;
    let high = -1;
    for (let i = begin; i < end; i++) {
      if (column[i] === null) continue;
      if (low < 0 || column[i] < column[low]) low = i;
      if (high < 0 || column[i] > column[high]) high = i;
    }
    return [low, high];
  }

  // At most `limit` rows, thinned as the server does (its Downsampler): the rows between the
  // first and the last in buckets of equal length, each bucket two rows (at its first and
  // last x) holding every line's minimum and maximum in the order they came, so a spike
  // stays visible; the first and the last row kept as they are.
  function thin(data, limit) {
    const n = data[0].length;
    const size = Math.ceil((n - 2) / Math.floor((limit - 2) / 2));
    const out = data.map((column) => [column[0]]);
    for (let begin = 1; begin < n - 1; begin += size) {
      const end = Math.min(begin + size, n - 1);
      out[0].push(data[0][begin], data[0][end - 1]);
      for (let c = 1; c < data.length; c++) {
        const [low, high] = extremes(data[c], begin, end);
        const at = (i) => (i < 0 ? null : data[c][i]);
        out[c].push(at(Math.min(low, high)), at(Math.max(low, high)));
      }
    }
    data.forEach((column, c) => out[c].push(column[n - 1]));
    return out;
  }

  function onGraph(graph) {
    note.textContent = "";
    let chart = charts.get(graph.file);
    const changedColumns = chart && chart.data.length !== graph.columns.length;
    if (chart && (graph.reset || changedColumns)) {
      resizer.unobserve(chart.holder);
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
    if (chart.data[0].length > 2 * rowLimit(chart)) chart.data = thin(chart.data, rowLimit(chart));
    chart.stats = graph.stats || [];
    redraw(chart);
    const points = chart.data[0].length;
    chart.card.dataset.points = String(points);
    chart.meta.textContent = points + " points · " + graph.file +
      (graph.skipped_rows ? " · " + graph.skipped_rows + " unreadable rows skipped" : "");
  }

  function showSmoothing() {
    slider.value = String(smoothing);
    sliderValue.textContent = smoothing ? smoothing.toFixed(2) : "off";
  }
  showSmoothing();
  slider.addEventListener("input", () => {
    smoothing = parseFloat(slider.value) || 0;
    try {
      localStorage.setItem(SMOOTHING_KEY, String(smoothing));
    } catch (err) {
      // not kept: the setting lasts as long as the page
    }
    showSmoothing();
    for (const chart of charts.values()) redraw(chart);
  });

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
