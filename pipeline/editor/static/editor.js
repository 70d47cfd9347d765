// dragpipe edit: the page. Plain JavaScript, no build step, no dependencies.
//
// Coordinates: points are aligned-face pixels (x right, y down, pixel centres at integers),
// as the spec's `space: aligned`; the canvas shows the R x R face scaled to its size.
// Each point keeps the form the server writes it in: {aligned: [x, y]} (placed or moved
// here), {landmark: i} (snapped) or {written: VALUE} (as the spec has it, untouched).
"use strict";

const TOKEN = document.querySelector('meta[name="dragpipe-token"]').content;
const $ = (id) => document.getElementById(id);
const HIT = 9; // px on screen to grab a point

const state = {
  session: null,
  open: null, // the /api/open answer of the current photo
  face: null, // the chosen face's index among the photo's faces
  chain: [], // edits, first to last; the last is the one being made
  pending: null, // a handle waiting for its target
  selected: null, // {pair, role} of the selected point
  moving: null, // {pair, role} of the point being dragged
  painting: false,
  images: {}, // url -> loaded Image
  view: null, // what the canvas shows under the points: an Image
  liveFrame: null,
  work: null, // the running work's id
  showBefore: false,
};

// --- server --------------------------------------------------------------------------------
async function api(path, body, contentType) {
  const options = { headers: { "X-Dragpipe-Token": TOKEN } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = contentType || "application/json";
    options.body = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function withToken(url) {
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

// Run a piece of work: follow its events until it ends; resolves with its result.
function runWork(path, body, onEvent) {
  return api(path, body).then((answer) => new Promise((resolve, reject) => {
    state.work = answer.work;
    setBusy(true);
    const source = new EventSource(withToken(`/api/work/${answer.work}/events`));
    const finish = () => { source.close(); state.work = null; setBusy(false); };
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "done") { finish(); resolve(event.result); return; }
      if (event.type === "failed") { finish(); reject(new Error(event.message)); return; }
      showEvent(event);
      if (onEvent) onEvent(event);
    };
    source.onerror = () => { if (state.work === answer.work) status("connection lost; retrying..."); };
  }));
}

function setBusy(busy) {
  for (const id of ["invert", "drag", "save", "undo", "chain-edit"]) $(id).disabled = busy;
  $("stop").disabled = !busy;
  if (!busy) updateButtons();
}

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function seconds(value) {
  if (value === null || value === undefined) return "?";
  return value < 60 ? `${Math.round(value)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

function showEvent(event) {
  if (event.type === "job") {
    status(`${event.label} ${event.stage}: ${event.state}${event.why ? " (" + event.why + ")" : ""}`);
  } else if (event.type === "progress") {
    const live = Object.entries(event.live || {}).map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`);
    const total = event.total ? `/${event.total}` : "";
    status(`${event.label}: step ${event.step}${total}${live.length ? ", " + live.join(", ") : ""}` +
      (event.total ? `, ETA ${seconds(event.eta)}` : ""));
    $("progress").max = event.total || 1;
    $("progress").value = event.step;
  } else if (event.type === "drag") {
    const distance = event.distances.length ? Math.max(...event.distances).toFixed(2) : "-";
    $("hint").textContent = `drag step ${event.step}, distance ${distance} px`;
  } else if (event.type === "frame" && event.image) {
    loadImage(event.image).then((image) => { state.liveFrame = image; draw(); });
  } else if (event.type === "stopped") {
    $("hint").textContent = `stopped at step ${event.step}: finishing the edit there (max_steps: ${event.step})`;
  } else if (event.type === "log") {
    $("hint").textContent = event.text;
  }
}

function loadImage(url) {
  if (state.images[url]) return Promise.resolve(state.images[url]);
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => { state.images[url] = image; resolve(image); };
    image.onerror = () => reject(new Error("could not load an image"));
    image.src = url.startsWith("data:") ? url : withToken(url);
  });
}

// --- the chain of edits -------------------------------------------------------------------
function current() { return state.chain[state.chain.length - 1]; }
function faceInfo() { return state.open.faces[state.face]; }
function resolution() { return faceInfo().resolution; }

function freeName(base) {
  const taken = new Set([...(state.open ? state.open.edits.map((e) => e.name) : []),
    ...state.chain.map((e) => e.name)]);
  for (let n = 1; ; n++) if (!taken.has(`${base}${n}`)) return `${base}${n}`;
}

function newEdit(from) {
  return { name: freeName("edit"), from: from ? from.name : null, pairs: [], space: "photo",
    mask: [], painted: null, drag: null, composite: null, specMask: null, result: null,
    paint: makeMaskCanvas() };
}

function makeMaskCanvas() {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = state.open ? resolution() : 1;
  canvas.dirty = false;
  return canvas;
}

// A page form of the server (points written) -> an edit of the chain, placed on this face.
function fromForm(form, keep) {
  const resolved = (form.resolved || {})[String(faceInfo().index)] || {};
  const pairs = form.pairs.map((pair, i) => ({
    space: pair.space,
    handle: { form: pair.handle, aligned: resolved.handles ? resolved.handles[i] : null },
    target: { form: pair.target, aligned: resolved.targets ? resolved.targets[i] : null },
  }));
  return { name: form.name, from: form.from, pairs: pairs.filter((p) => p.handle.aligned && p.target.aligned),
    space: form.space || "photo", mask: form.mask || [], painted: keep ? keep.painted : null,
    drag: form.drag, composite: form.composite, specMask: resolved.mask || null,
    result: keep ? keep.result : null, paint: keep ? keep.paint : makeMaskCanvas(),
    error: resolved.error };
}

function toForm(edit) {
  return { name: edit.name, from: edit.from, space: edit.space, mask: edit.mask,
    painted: edit.painted, drag: edit.drag, composite: edit.composite,
    pairs: edit.pairs.map((p) => ({ handle: p.handle.form, target: p.target.form, space: p.space })) };
}

function showChain() {
  $("chain").textContent = state.chain.length > 1 ? "chain: " + state.chain.map((e) => e.name).join(" → ") : "";
  $("edit-name").value = current().name;
  updateButtons();
}

function updateButtons() {
  if (!state.open || state.work) return;
  const edit = current();
  $("chain-edit").disabled = !edit.result;
  $("undo").disabled = !(edit.result || state.chain.length > 1);
  $("drag").disabled = edit.pairs.length === 0;
  $("save").disabled = edit.pairs.length === 0;
  const result = edit.result;
  $("before-after").disabled = !result;
  $("full-result").hidden = !result;
  if (result) $("full-result").href = withToken(result.composite.file);
}

// --- opening a photo and choosing a face ---------------------------------------------------
async function openPhoto(photoId) {
  status(`opening ${photoId}: aligning...`);
  state.open = null;
  state.chain = [];
  const result = await runWork("/api/open", { photo: photoId });
  state.open = result;
  const img = $("photo-img");
  img.onload = drawPhotoOverlay;
  img.src = withToken(result.photo.url);
  const select = $("edit-select");
  select.innerHTML = "";
  select.append(new Option("(new edit)", ""));
  for (const edit of result.edits) select.append(new Option(edit.name, edit.name));
  await chooseFace(result.selected.length ? result.selected[0] : 0);
  status(`${photoId}: ${result.faces.length} face(s); face setting '${result.face_setting}'`);
}

async function chooseFace(index) {
  state.face = index;
  state.pending = state.selected = null;
  $("face-title").textContent = `(face ${index} of ${state.open.faces.length})`;
  state.view = await loadImage(faceInfo().image);
  state.liveFrame = null;
  startChain($("edit-select").value);
  drawPhotoOverlay();
  draw();
}

// The chain that ends with the spec's edit `name` (its `from:` edits first), or a new edit.
function startChain(name) {
  if (!name) { state.chain = [newEdit(null)]; showChain(); return; }
  const byName = Object.fromEntries(state.open.edits.map((e) => [e.name, e]));
  const chain = [];
  for (let edit = byName[name]; edit; edit = edit.from ? byName[edit.from] : null) chain.unshift(edit);
  state.chain = chain.map((form) => fromForm(form));
  const error = current().error;
  if (error) status(error, true);
  showChain();
}

function drawPhotoOverlay() {
  const img = $("photo-img");
  const overlay = $("photo-overlay");
  if (!state.open || !img.complete || !img.naturalWidth) return;
  overlay.width = img.clientWidth;
  overlay.height = img.clientHeight;
  overlay.style.width = img.clientWidth + "px";
  overlay.style.height = img.clientHeight + "px";
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const scale = img.clientWidth / state.open.photo.width;
  state.open.faces.forEach((face, i) => {
    const [x0, y0, x1, y1] = face.box;
    ctx.strokeStyle = i === state.face ? "#ffcc00" : "#00c8ff";
    ctx.lineWidth = i === state.face ? 3 : 2;
    ctx.strokeRect(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.font = "13px system-ui";
    ctx.fillText(`face ${face.index}`, x0 * scale + 3, y0 * scale - 4);
  });
}

$("photo-overlay").addEventListener("click", (event) => {
  if (!state.open || state.work) return;
  const img = $("photo-img");
  const scale = img.clientWidth / state.open.photo.width;
  const rect = event.target.getBoundingClientRect();
  const x = (event.clientX - rect.left) / scale;
  const y = (event.clientY - rect.top) / scale;
  const hit = state.open.faces.findIndex((f) => x >= f.box[0] && x <= f.box[2] && y >= f.box[1] && y <= f.box[3]);
  if (hit >= 0 && hit !== state.face) chooseFace(hit);
});

// --- the face canvas: points, landmarks, mask ---------------------------------------------
const canvas = $("face-canvas");

function toAligned(event) {
  const rect = canvas.getBoundingClientRect();
  const R = resolution();
  return [(event.clientX - rect.left) / rect.width * R - 0.5, (event.clientY - rect.top) / rect.height * R - 0.5];
}

function toCanvas([x, y]) {
  const R = resolution();
  return [(x + 0.5) / R * canvas.width, (y + 0.5) / R * canvas.height];
}

function nearestLandmark([x, y]) {
  let best = 0, bestDistance = Infinity;
  faceInfo().aligned_landmarks.forEach(([lx, ly], i) => {
    const d = Math.hypot(lx - x, ly - y);
    if (d < bestDistance) { best = i; bestDistance = d; }
  });
  return best;
}

function pointAt(xy) {
  if (!$("snap").checked) return { form: { aligned: xy }, aligned: xy };
  const i = nearestLandmark(xy);
  const aligned = faceInfo().aligned_landmarks[i].slice();
  return { form: { landmark: i }, aligned };
}

function hitPoint(event) {
  const rect = canvas.getBoundingClientRect();
  const px = (event.clientX - rect.left) * canvas.width / rect.width;
  const py = (event.clientY - rect.top) * canvas.height / rect.height;
  const pairs = current().pairs;
  for (let i = pairs.length - 1; i >= 0; i--) {
    for (const role of ["target", "handle"]) {
      const [cx, cy] = toCanvas(pairs[i][role].aligned);
      if (Math.hypot(cx - px, cy - py) <= HIT) return { pair: i, role };
    }
  }
  return null;
}

function mode() { return document.querySelector('input[name="mode"]:checked').value; }

// A brush stroke from the last painted spot (state.painting) to the mouse, in aligned pixels.
function paintAt(event) {
  const edit = current();
  const [x, y] = toAligned(event);
  const [x0, y0] = Array.isArray(state.painting) ? state.painting : [x, y];
  const ctx = edit.paint.getContext("2d");
  ctx.globalCompositeOperation = mode() === "erase" ? "destination-out" : "source-over";
  ctx.strokeStyle = "#fff";
  ctx.lineCap = "round";
  ctx.lineWidth = 2 * Number($("brush").value) * resolution() / 256;
  ctx.beginPath();
  ctx.moveTo(x0 + 0.5, y0 + 0.5);
  ctx.lineTo(x + 0.5, y + 0.5);
  ctx.stroke();
  state.painting = [x, y];
  edit.paint.dirty = true;
  edit.painted = null; // uploaded again before the next drag
  draw();
}

canvas.addEventListener("mousedown", (event) => {
  if (!state.open || state.work || event.button !== 0) return;
  const edit = current();
  if (edit.result) { status("this edit is done: press 'New edit from result' to go on, or Undo"); return; }
  if (mode() !== "points") { state.painting = true; paintAt(event); return; }
  const hit = hitPoint(event);
  if (hit) { state.selected = hit; state.moving = hit; draw(); return; }
  const point = pointAt(toAligned(event));
  if (!state.pending) {
    state.pending = point;
    $("hint").textContent = "handle placed: now click its target";
  } else {
    edit.pairs.push({ handle: state.pending, target: point, space: null });
    state.pending = null;
    state.selected = { pair: edit.pairs.length - 1, role: "target" };
    $("hint").textContent = `${edit.pairs.length} pair(s)`;
  }
  updateButtons();
  draw();
});

canvas.addEventListener("mousemove", (event) => {
  if (!state.open) return;
  if (state.painting) { paintAt(event); return; }
  const xy = toAligned(event);
  if (state.moving) {
    const pair = current().pairs[state.moving.pair];
    pair[state.moving.role] = pointAt(xy);
    draw();
    return;
  }
  if ($("show-landmarks").checked) {
    const i = nearestLandmark(xy);
    $("hint").textContent = `${state.session.landmarks[i]} (${i})`;
  }
});

window.addEventListener("mouseup", () => { state.moving = null; state.painting = false; });

function deleteSelected() {
  if (!state.selected || state.work) return;
  current().pairs.splice(state.selected.pair, 1);
  state.selected = null;
  updateButtons();
  draw();
}

canvas.addEventListener("keydown", (event) => {
  if (event.key === "Delete" || event.key === "Backspace") { deleteSelected(); event.preventDefault(); }
});
$("delete-pair").addEventListener("click", deleteSelected);
$("clear-points").addEventListener("click", () => {
  current().pairs = []; state.pending = state.selected = null; updateButtons(); draw();
});
$("clear-mask").addEventListener("click", () => {
  const edit = current();
  edit.paint = makeMaskCanvas(); edit.painted = null; draw();
});
$("drop-spec-mask").addEventListener("click", () => {
  const edit = current();
  edit.mask = []; edit.specMask = null; draw();
});
for (const id of ["show-landmarks", "show-names", "show-mask"]) $(id).addEventListener("change", draw);

function arrow(ctx, [x0, y0], [x1, y1]) {
  const angle = Math.atan2(y1 - y0, x1 - x0);
  ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - 11 * Math.cos(angle - 0.45), y1 - 11 * Math.sin(angle - 0.45));
  ctx.lineTo(x1 - 11 * Math.cos(angle + 0.45), y1 - 11 * Math.sin(angle + 0.45));
  ctx.closePath(); ctx.fill();
}

function dot(ctx, [x, y], colour, selected, landmark, radius) {
  ctx.fillStyle = colour;
  ctx.beginPath(); ctx.arc(x, y, radius || (selected ? 7 : 5), 0, 2 * Math.PI); ctx.fill();
  ctx.strokeStyle = landmark ? "#ffcc00" : "#fff"; ctx.lineWidth = landmark ? 2.5 : 1.5; ctx.stroke();
}

function draw() {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.open) return;
  const edit = current();
  const base = state.liveFrame || (edit.result && !state.showBefore ? state.images[edit.result.edit.edited] : null)
    || state.view;
  if (base) ctx.drawImage(base, 0, 0, canvas.width, canvas.height);
  if ($("show-mask").checked) {
    if (edit.specMask && state.images[edit.specMask]) {
      ctx.globalAlpha = 0.35; ctx.drawImage(state.images[edit.specMask], 0, 0, canvas.width, canvas.height);
      ctx.globalAlpha = 1;
    } else if (edit.specMask) loadImage(edit.specMask).then(draw);
    if (edit.paint.dirty) {
      const tint = document.createElement("canvas");
      tint.width = tint.height = edit.paint.width;
      const t = tint.getContext("2d");
      t.drawImage(edit.paint, 0, 0);
      t.globalCompositeOperation = "source-in";
      t.fillStyle = "rgba(60, 120, 255, 0.4)";
      t.fillRect(0, 0, tint.width, tint.height);
      ctx.drawImage(tint, 0, 0, canvas.width, canvas.height);
    }
  }
  if ($("show-landmarks").checked) {
    ctx.fillStyle = "#00e0a0"; ctx.font = "9px system-ui";
    faceInfo().aligned_landmarks.forEach((xy, i) => {
      const [x, y] = toCanvas(xy);
      ctx.beginPath(); ctx.arc(x, y, 2, 0, 2 * Math.PI); ctx.fill();
      if ($("show-names").checked) ctx.fillText(state.session.landmarks[i], x + 3, y - 2);
    });
  }
  ctx.lineWidth = 2;
  edit.pairs.forEach((pair, i) => {
    const h = toCanvas(pair.handle.aligned), t = toCanvas(pair.target.aligned);
    ctx.strokeStyle = ctx.fillStyle = "#ffffff";
    arrow(ctx, h, t);
    const sel = state.selected && state.selected.pair === i;
    dot(ctx, h, "#e53935", sel && state.selected.role === "handle", "landmark" in pair.handle.form);
    dot(ctx, t, "#1e63e9", sel && state.selected.role === "target", "landmark" in pair.target.form);
  });
  if (state.pending) dot(ctx, toCanvas(state.pending.aligned), "#e53935", true, "landmark" in state.pending.form);
  if (edit.result && edit.result.edit.final_handles && !state.liveFrame) {
    for (const xy of edit.result.edit.final_handles) dot(ctx, toCanvas(xy), "#ff9800", false, false, 3);
  }
}

// --- invert, drag, stop, chain, undo, save ------------------------------------------------
function fail(error) { status(error.message, true); }

$("invert").addEventListener("click", () => {
  runWork("/api/invert", { photo: state.open.photo.id, face: faceInfo().index })
    .then(async (result) => {
      state.view = await loadImage(result.reconstruction);
      const m = result.metrics;
      status(`inverted: PSNR ${m.psnr ? m.psnr.toFixed(2) : "?"} dB` + (m.lpips !== undefined ? `, LPIPS ${Number(m.lpips).toFixed(3)}` : ""));
      draw();
    }).catch(fail);
});

async function uploadPaint(edit) {
  if (!edit.paint.dirty || edit.painted) return;
  const blob = await new Promise((resolve) => edit.paint.toBlob(resolve, "image/png"));
  const answer = await api("/api/mask", await blob.arrayBuffer(), "image/png");
  edit.painted = answer.id;
}

$("drag").addEventListener("click", async () => {
  const edit = current();
  edit.name = $("edit-name").value.trim() || edit.name;
  try {
    await uploadPaint(edit);
    state.liveFrame = null;
    const result = await runWork("/api/drag", {
      photo: state.open.photo.id, face: faceInfo().index, edits: state.chain.map(toForm),
    });
    acceptChain(result.chain, result);
    state.liveFrame = null;
    await loadImage(result.edit.edited);
    await loadImage(result.composite.url);
    showResult(false);
    const m = result.edit.metrics;
    status(`drag done: ${m.steps} steps (${m.stop_reason}), distance ${m.final_distance.map((d) => d.toFixed(2)).join(", ")} px` +
      (result.stopped_at !== null ? `; stopped: saved with max_steps ${result.stopped_at}` : "") +
      (result.edit.computed ? "" : " (from the cache)"));
  } catch (error) { state.liveFrame = null; fail(error); }
  draw();
});

// The server's forms of the chain replace ours (points as the spec will write them).
function acceptChain(forms, result) {
  state.chain = forms.map((form, i) => fromForm(form, state.chain[i]));
  current().result = result;
  state.selected = state.pending = null;
  showChain();
}

$("stop").addEventListener("click", () => {
  if (state.work) api(`/api/work/${state.work}/stop`, {}).catch(fail);
});

$("chain-edit").addEventListener("click", () => {
  const previous = current();
  state.chain.push(newEdit(previous));
  state.view = state.images[previous.result.edit.edited];
  showChain(); draw();
});

// Undo: back to the previous edit of the chain (its result comes from the cache), or, for
// the first edit, back to the face before its drag (its points kept).
$("undo").addEventListener("click", () => {
  if (state.chain.length > 1) {
    state.chain.pop();
    state.view = state.images[current().result.edit.edited];
  } else {
    current().result = null;
    state.view = state.images[faceInfo().image] || state.view;
  }
  state.selected = state.pending = null;
  showResult(false);
  showChain(); draw();
});

$("save").addEventListener("click", () => {
  current().name = $("edit-name").value.trim() || current().name;
  Promise.all(state.chain.map(uploadPaint)).then(() => runWork("/api/save", {
    photo: state.open.photo.id, face: faceInfo().index, edits: state.chain.map(toForm),
  })).then((result) => {
    status(`saved ${result.edits.join(", ")} to ${result.spec}`);
    $("spec-name").textContent = result.spec;
  }).catch(fail);
});

// --- the photo: before / after --------------------------------------------------------------
function showResult(before) {
  const result = current().result;
  state.showBefore = before || !result;
  $("photo-img").src = withToken(state.showBefore || !result ? state.open.photo.url : result.composite.url);
  $("photo-img").dataset.showing = state.showBefore ? "before" : "after";
  $("before-after").textContent = state.showBefore ? "show after" : "show before";
  updateButtons();
  draw();
}

$("before-after").addEventListener("click", () => showResult(!state.showBefore));

// --- start ------------------------------------------------------------------------------------
$("photo-select").addEventListener("change", (event) => openPhoto(event.target.value).catch(fail));
$("edit-select").addEventListener("change", (event) => { startChain(event.target.value); draw(); });
window.addEventListener("resize", drawPhotoOverlay);

(async function start() {
  try {
    state.session = await api("/api/session");
    $("spec-name").textContent = state.session.spec;
    const select = $("photo-select");
    for (const photo of state.session.photos) select.append(new Option(photo.id, photo.id));
    const wanted = new URLSearchParams(location.search).get("photo");
    if (wanted && state.session.photos.some((p) => p.id === wanted)) select.value = wanted;
    if (select.value) await openPhoto(select.value);
  } catch (error) { fail(error); }
})();
