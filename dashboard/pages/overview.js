// Today and the chosen period in numbers, and conversations per day as a
// uPlot chart (vendored in vendor/, loaded on this page only), with the
// same numbers as a table for those who cannot see the chart; the busiest
// hours of the day (UTC: tenants have no time zone setting yet) likewise.
import { api, h, heading, fmtPct } from "../lib.js";

let uplot = null;
function loadChart() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (uplot) return uplot;
  document.head.append(h("link", { rel: "stylesheet", href: "vendor/uPlot.min.css" }));
  uplot = new Promise((resolve, reject) => {
    const s = h("script", { src: "vendor/uPlot.iife.min.js" });
    s.onload = () => resolve(window.uPlot);
    s.onerror = () => reject(new Error("The chart library did not load."));
    document.head.append(s);
  });
  return uplot;
}

function stat(label, value, sub) {
  return h("div", { class: "stat" }, h("span", { class: "label" }, label), h("strong", {}, value),
    sub ? h("span", { class: "sub" }, sub) : null);
}

function numbers(title, s) {
  return h("section", { class: "card" }, h("h2", {}, title), h("div", { class: "stats" },
    stat("Conversations", String(s.conversations)),
    stat("Messages", String(s.messages)),
    stat("Answered", fmtPct(s.answered_rate), `${s.answered} of ${s.answered + s.fallback}`),
    stat("Helpful", String(s.feedback.thumbs_up)),
    stat("Not helpful", String(s.feedback.thumbs_down))));
}

function cssVar(name) { return getComputedStyle(document.body).getPropertyValue(name).trim(); }

export async function render(view) {
  let days = Number(sessionStorage.getItem("chatter:overview:days")) || 30;
  const [today, summary] = await Promise.all([
    api("GET", "analytics/summary?days=1&groups=false"),
    api("GET", `analytics/summary?days=${days}&groups=false`),
  ]);
  const periodBox = h("div");
  const chartBox = h("div", { class: "chart", role: "img", "aria-label": "Conversations per day: answered and fallback" });
  const tableBox = h("details", {}, h("summary", {}, "The numbers per day"));
  const picker = h("select", { id: "period", onchange: async () => {
    days = Number(picker.value);
    sessionStorage.setItem("chatter:overview:days", String(days));
    draw(await api("GET", `analytics/summary?days=${days}&groups=false`));
  } }, [7, 30, 90, 365].map((d) => h("option", { value: d, selected: d === days }, `Last ${d} days`)));

  const hoursBox = h("div", { class: "chart hours", role: "img", "aria-label": "Questions per hour of the day, UTC" });
  const hoursText = h("p", { class: "muted" });
  const hoursTable = h("details", {}, h("summary", {}, "The numbers per hour"));

  let plot = null;
  let hoursPlot = null;
  function busiest(s) {
    const hours = s.busiest_hours;
    const label = (i) => `${String(i).padStart(2, "0")}:00–${String((i + 1) % 24).padStart(2, "0")}:00`;
    const top = hours.map((n, i) => [n, i]).filter(([n]) => n > 0).sort((a, b) => b[0] - a[0]).slice(0, 3);
    hoursText.textContent = top.length
      ? `Busiest: ${top.map(([n, i]) => `${label(i)} (${n} question${n === 1 ? "" : "s"})`).join(", ")}. Times are UTC.`
      : "No questions in this period.";
    hoursTable.replaceChildren(h("summary", {}, "The numbers per hour"), h("table", {},
      h("thead", {}, h("tr", {}, ["Hour (UTC)", "Questions"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, hours.map((n, i) => h("tr", {}, h("td", {}, label(i)), h("td", {}, String(n)))))));
  }
  async function draw(s) {
    periodBox.replaceChildren(numbers(`Last ${s.days} days`, s));
    const xs = s.per_day.map((d) => Date.parse(d.date + "T00:00:00Z") / 1000);
    const data = [xs, s.per_day.map((d) => d.conversations), s.per_day.map((d) => d.answered), s.per_day.map((d) => d.fallback)];
    tableBox.replaceChildren(h("summary", {}, "The numbers per day"), h("table", {},
      h("thead", {}, h("tr", {}, ["Day", "Conversations", "Answered", "Fallback"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, s.per_day.slice().reverse().map((d) => h("tr", {},
        h("td", {}, d.date), h("td", {}, String(d.conversations)), h("td", {}, String(d.answered)), h("td", {}, String(d.fallback)))))));
    const UPlot = await loadChart();
    plot?.destroy();
    const width = Math.max(260, Math.min(document.documentElement.clientWidth - 72, 1000));
    const text = cssVar("--fg") || "#111";
    const grid = cssVar("--line") || "#ddd";
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    plot = new UPlot({
      width, height: 260,
      scales: { x: { time: true } },
      axes: [axis, { ...axis, label: "per day" }],
      series: [{},
        { label: "Conversations", stroke: cssVar("--accent") || "#2563eb", width: 2 },
        { label: "Answered", stroke: "#16a34a", fill: "rgba(22,163,74,.12)", width: 2 },
        { label: "Fallback", stroke: "#dc2626", width: 2, dash: [6, 4] }],
    }, data, chartBox);
    busiest(s);
    hoursPlot?.destroy();
    hoursPlot = new UPlot({
      width, height: 160,
      scales: { x: { time: false, range: [-0.5, 23.5] } },
      axes: [{ ...axis, values: (u, ticks) => ticks.map((t) => `${t}h`) }, { ...axis, label: "questions" }],
      legend: { show: false },
      series: [{}, { label: "Questions", fill: cssVar("--accent") || "#2563eb", stroke: cssVar("--accent") || "#2563eb",
        paths: UPlot.paths.bars({ size: [0.8] }), points: { show: false } }],
    }, [[...Array(24).keys()], s.busiest_hours], hoursBox);
  }

  view.append(heading("Overview"), numbers("Today", today),
    h("div", { class: "row" }, h("label", { for: "period" }, "Period"), picker),
    periodBox, h("section", { class: "card" }, h("h2", {}, "Conversations per day"), chartBox, tableBox),
    h("section", { class: "card" }, h("h2", {}, "Busiest hours"), hoursText, hoursBox, hoursTable));
  await draw(summary);
}
