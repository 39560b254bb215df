// passkit review: a keyboard-driven grid. Decisions are POSTed one action at a time, in order, and shown only
// once the server has stored them.
"use strict";

const TOKEN = document.querySelector('meta[name="passkit-token"]').content;
const LABELS = {
  human: { label: "problem", reason: "review:human", text: "person" },
  other: { label: "problem", reason: "review:other", text: "other problem" },
  clean: { label: "clean", reason: "", text: "clean" },
};
const SVG = "http://www.w3.org/2000/svg";

const view = {
  total: 0, pageSize: 40, page: 0, cursor: 0, items: [], counts: null, loading: false,
  undo: [],            // stack of [{key, previous decision}] batches
  chain: Promise.resolve(),
};
const $ = (id) => document.getElementById(id);

function kindOf(decision) {
  if (!decision) return "";
  if (decision.label === "clean") return "clean";
  return decision.reason === "review:human" ? "human" : "other";
}

async function api(path, body) {
  const options = body === undefined ? { headers: { "X-Passkit-Token": TOKEN } } : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Passkit-Token": TOKEN },
  };
  const response = await fetch(path, options);
  if (!response.ok) throw new Error(`${response.status}: ${(await response.text()).slice(0, 200)}`);
  return response.json();
}

function toast(message, info = false) {
  const box = $("toast");
  box.textContent = message;
  box.className = info ? "toast info" : "toast";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, info ? 1500 : 6000);
}

function showProgress() {
  const c = view.counts;
  if (!c) return;
  const pages = Math.max(1, Math.ceil(view.total / view.pageSize));
  $("progress").textContent = `${c.decided.toLocaleString()} / ${view.total.toLocaleString()} decided · ` +
    `${c.human} person · ${c.other} other · ${c.clean.toLocaleString()} clean`;
  $("page").textContent = `page ${view.page + 1} / ${pages} · image ${Math.min(view.cursor + 1, view.total)}`;
  $("bar-fill").style.width = `${view.total ? (100 * c.decided) / view.total : 0}%`;
}

function picture(item, full) {
  const pic = document.createElement("div");
  pic.className = "pic";
  const img = document.createElement("img");
  img.alt = item.key;
  img.decoding = "async";
  if (!full) img.loading = "lazy";
  img.src = `/img/${encodeURIComponent(item.key)}${full ? "?full=1" : ""}`;
  pic.appendChild(img);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 1 1");
  svg.setAttribute("preserveAspectRatio", "none");
  for (const box of item.boxes) {
    const rect = document.createElementNS(SVG, "rect");
    for (const [name, value] of [["x", box.x], ["y", box.y], ["width", box.w], ["height", box.h]]) {
      rect.setAttribute(name, String(value));
    }
    rect.setAttribute("class", box.task);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${box.task} ${box.score} ${box.by}`;
    rect.appendChild(title);
    svg.appendChild(rect);
  }
  pic.appendChild(svg);
  return pic;
}

function formatScore(value) {
  return value > 0 && value < 0.01 ? value.toPrecision(2) : value.toFixed(3);
}

function scoreText(scores) {
  const parts = Object.entries(scores).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${formatScore(v)}`);
  return parts.join(" · ") || "no scores";
}

function tile(item, position) {
  const div = document.createElement("div");
  div.className = "tile";
  div.dataset.pos = String(position);
  div.dataset.key = item.key;
  const frame = document.createElement("div");
  frame.className = "frame";
  frame.appendChild(picture(item, false));
  div.appendChild(frame);
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = '<span class="score"></span><span class="label"></span>';
  meta.querySelector(".score").textContent = scoreText(item.scores);
  meta.title = item.key;
  div.appendChild(meta);
  const key = document.createElement("div");
  key.className = "meta";
  key.innerHTML = '<span class="key"></span>';
  key.querySelector(".key").textContent = item.key;
  div.appendChild(key);
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  for (const [kind, keyName] of [["human", "1"], ["other", "2"], ["clean", "0"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.kind = kind;
    button.textContent = `${keyName} ${LABELS[kind].text}`;
    buttons.appendChild(button);
  }
  div.appendChild(buttons);
  div.addEventListener("click", (event) => {
    const kind = event.target.dataset && event.target.dataset.kind;
    moveTo(position);
    if (kind) decide(kind);
  });
  paintTile(div, item.decision);
  return div;
}

function paintTile(div, decision) {
  const kind = kindOf(decision);
  div.classList.remove("human", "other", "clean", "pending");
  if (kind) div.classList.add(kind);
  div.querySelector(".label").textContent = kind ? LABELS[kind].text : "";
}

function tileAt(position) {
  return document.querySelector(`.tile[data-pos="${position}"]`);
}

function itemAt(position) {
  return view.items[position - view.page * view.pageSize];
}

async function loadPage(page, cursor) {
  const start = page * view.pageSize;
  const data = await api(`/api/items?start=${start}&count=${view.pageSize}`);
  view.page = page;
  view.items = data.items;
  view.total = data.total;
  const grid = $("grid");
  grid.replaceChildren(...data.items.map((item, i) => tile(item, start + i)));
  if (!data.items.length) grid.innerHTML = '<p class="empty">This queue is empty.</p>';
  view.cursor = Math.max(start, Math.min(cursor, start + data.items.length - 1));
  highlight();
  prefetch(page + 1);
}

async function prefetch(page) {
  if (page * view.pageSize >= view.total) return;
  try {
    const data = await api(`/api/items?start=${page * view.pageSize}&count=${view.pageSize}`);
    for (const item of data.items) new Image().src = `/img/${encodeURIComponent(item.key)}`;
  } catch (error) { /* prefetching is best effort */ }
}

function highlight() {
  for (const old of document.querySelectorAll(".tile.current")) old.classList.remove("current");
  const current = tileAt(view.cursor);
  if (current) {
    current.classList.add("current");
    current.scrollIntoView({ block: "nearest" });
  }
  showProgress();
}

async function moveTo(position) {
  if (!view.total || view.loading) return;
  position = Math.max(0, Math.min(position, view.total - 1));
  const page = Math.floor(position / view.pageSize);
  if (page !== view.page) {
    // Keys pressed while the next page loads are dropped, never applied to an image of the old page.
    view.loading = true;
    try {
      await loadPage(page, position);
    } finally {
      view.loading = false;
    }
  } else {
    view.cursor = position;
    highlight();
  }
}

function columns() {
  const tiles = document.querySelectorAll(".tile");
  if (tiles.length < 2) return 1;
  const top = tiles[0].offsetTop;
  let n = 0;
  for (const t of tiles) { if (t.offsetTop !== top) break; n += 1; }
  return Math.max(1, n);
}

// Every write goes through one promise chain so that the server sees actions in the order they were made.
function enqueue(work) {
  view.chain = view.chain.then(work).catch((error) => toast(`NOT SAVED — ${error.message}`));
  return view.chain;
}

function applyDecisions(decisions) {
  for (const [key, decision] of Object.entries(decisions)) {
    const item = view.items.find((i) => i.key === key);
    if (item) item.decision = decision;
    const div = document.querySelector(`.tile[data-key="${CSS.escape(key)}"]`);
    if (div) paintTile(div, decision);
  }
}

function post(items, kind) {
  const keys = items.map((i) => i.key);
  const previous = items.map((i) => ({ key: i.key, decision: i.decision }));
  for (const item of items) {
    item.pending = true;  // decided, not yet stored: "rest of page clean" must not take it
    const div = document.querySelector(`.tile[data-key="${CSS.escape(item.key)}"]`);
    if (div) div.classList.add("pending");
  }
  return enqueue(async () => {
    const spec = LABELS[kind];
    try {
      const result = await api("/api/decide", { keys, label: spec.label, reason: spec.reason });
      applyDecisions(result.decisions);
      view.counts = result.counts;
      view.undo.push(previous);
      showProgress();
    } finally {
      for (const item of items) item.pending = false;
      for (const key of keys) {
        const div = document.querySelector(`.tile[data-key="${CSS.escape(key)}"]`);
        if (div) div.classList.remove("pending");
      }
    }
  });
}

function decide(kind) {
  const item = itemAt(view.cursor);
  if (!item || view.loading) return;
  post([item], kind);
  if (view.cursor < view.total - 1) moveTo(view.cursor + 1);
}

function restOfPageClean() {
  if (view.loading) return;
  const undecided = view.items.filter((i) => !i.decision && !i.pending);
  if (!undecided.length) { toast("every image on this page has a decision", true); return; }
  post(undecided, "clean");
  toast(`${undecided.length} marked clean (u undoes)`, true);
}

function undoLast() {
  enqueue(async () => {
    const batch = view.undo.pop();
    if (!batch) { toast("nothing to undo in this session", true); return; }
    const result = await api("/api/undo", { keys: batch.map((b) => b.key) });
    view.counts = result.counts;
    const restore = batch.filter((b) => b.decision);
    const cleared = Object.fromEntries(batch.map((b) => [b.key, null]));
    applyDecisions(cleared);
    // An undone change of mind restores the decision it replaced.
    for (const kind of ["human", "other", "clean"]) {
      const same = restore.filter((b) => kindOf(b.decision) === kind).map((b) => b.key);
      if (!same.length) continue;
      const spec = LABELS[kind];
      const again = await api("/api/decide", { keys: same, label: spec.label, reason: spec.reason });
      applyDecisions(again.decisions);
      view.counts = again.counts;
    }
    const first = view.items.findIndex((i) => i.key === batch[0].key);
    showProgress();
    if (first >= 0) moveTo(view.page * view.pageSize + first);
  });
}

function zoom() {
  const item = itemAt(view.cursor);
  const box = $("zoom");
  if (!box.hidden || !item) { box.hidden = true; return; }
  $("zoom-pic").replaceWith(Object.assign(picture(item, true), { id: "zoom-pic" }));
  $("zoom-caption").textContent = `${item.key} · ${scoreText(item.scores)}`;
  box.hidden = false;
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const zoomed = !$("zoom").hidden;
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  let handled = true;
  if (event.key === "Escape" || (zoomed && (event.key === "z" || event.key === "Enter"))) $("zoom").hidden = true;
  else if (event.key === "1") decide("human");
  else if (event.key === "2") decide("other");
  else if (event.key === "0") decide("clean");
  else if (step) moveTo(view.cursor + step);
  else if (event.key === "ArrowDown") moveTo(view.cursor + columns());
  else if (event.key === "ArrowUp") moveTo(view.cursor - columns());
  else if (event.key === "u") undoLast();
  else if (event.key === "c") restOfPageClean();
  else if (event.key === "n" || event.key === "PageDown") moveTo((view.page + 1) * view.pageSize);
  else if (event.key === "p" || event.key === "PageUp") moveTo(Math.max(0, view.page - 1) * view.pageSize);
  else if (event.key === "Home") moveTo(0);
  else if (event.key === "End") moveTo(view.total - 1);
  else if (event.key === "z" || event.key === "Enter") zoom();
  else if (event.key === "b") document.body.classList.toggle("noboxes");
  else handled = false;
  if (handled) event.preventDefault();
});

async function start() {
  try {
    const state = await api("/api/state");
    view.total = state.total;
    view.pageSize = state.page_size;
    view.counts = state.counts;
    const first = state.first_undecided === null ? 0 : state.first_undecided;
    await loadPage(Math.floor(first / view.pageSize), first);
  } catch (error) {
    toast(`cannot load the queue — ${error.message}`);
  }
}

start();
