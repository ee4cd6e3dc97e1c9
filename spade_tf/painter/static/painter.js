// The painter page: a label map of exact class ids, painted in a model-size
// buffer (no anti-aliasing ever touches the ids), and the generated image,
// asked of TF Serving's REST API after each stroke.

import { base64ToBytes, bytesToBase64, encodeGrayPNG } from "./png.js";

const $ = (id) => document.getElementById(id);
const canvas = $("label-canvas");
const ctx = canvas.getContext("2d");
const output = $("output-image");

const state = {
  config: null,
  width: 0,
  height: 0,
  ids: null, // Uint16Array, row-major: what is sent to the model
  base: null, // the loaded map (start-up, scene or upload): what the eraser restores
  image: null, // ImageData of the label colours, updated where ids change
  lut: new Uint8ClampedArray(65536 * 3), // id -> colour
  names: new Map(),
  classId: 0,
  tool: "brush",
  undo: [],
  redo: [],
  revision: 0, // bumped by every change of ids
  seed: 0, // style sample of VAE models
  inflight: false,
  timer: null,
  cache: new Map(), // label hash + seed + styles -> image data URL (undo/redo show at once)
  // SEAN: style photos ({name, codes [channels][style_dim], present [channels]}) and,
  // per segmap channel, the photo whose code it takes (absent: the mean code).
  styles: { sources: [], choice: new Map(), classesKey: "" },
};
const MAX_UNDO = 50;
const MAX_CACHE = 32;
const DEBOUNCE_MS = 120;

function setStatus(text, kind = "info") {
  const status = $("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

function setBusy(busy) {
  document.body.dataset.busy = String(busy);
  $("busy").hidden = !busy;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${url}: HTTP ${response.status}, not JSON`);
  }
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// Label map ---------------------------------------------------------------

function decodeIds(json) {
  if (json.width !== state.width || json.height !== state.height) {
    throw new Error(`label map is ${json.width}x${json.height}, the model takes ${state.width}x${state.height}`);
  }
  const bytes = base64ToBytes(json.ids);
  const view = new DataView(bytes.buffer);
  const ids = new Uint16Array(state.width * state.height);
  for (let i = 0; i < ids.length; i++) ids[i] = view.getUint16(2 * i, true);
  return ids;
}

function render(x0 = 0, y0 = 0, x1 = state.width - 1, y1 = state.height - 1) {
  const { ids, image, lut, width } = state;
  const data = image.data;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * width + x;
      const c = ids[i] * 3;
      data[4 * i] = lut[c];
      data[4 * i + 1] = lut[c + 1];
      data[4 * i + 2] = lut[c + 2];
      data[4 * i + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
}

function invalidate() {
  // What the model is asked changed (the map or the style seed): a new image is due.
  document.body.dataset.settled = "false"; // true again once it is shown (tests wait on it)
  state.revision += 1;
  canvas.dataset.revision = String(state.revision);
  schedulePredict();
}

function changed() {
  $("undo").disabled = state.undo.length === 0;
  $("redo").disabled = state.redo.length === 0;
  if (state.config.sean) renderStyleRegions();
  invalidate();
}

function pushUndo() {
  state.undo.push(state.ids.slice());
  if (state.undo.length > MAX_UNDO) state.undo.shift();
  state.redo = [];
}

function loadMap(ids, message) {
  if (state.ids) pushUndo();
  state.ids = ids;
  state.base = ids.slice();
  render();
  changed();
  setStatus(message);
}

function undo() {
  if (!state.undo.length) return;
  state.redo.push(state.ids);
  state.ids = state.undo.pop();
  render();
  changed();
}

function redo() {
  if (!state.redo.length) return;
  state.undo.push(state.ids);
  state.ids = state.redo.pop();
  render();
  changed();
}

// Painting -----------------------------------------------------------------

const stroke = { active: false, x: 0, y: 0, dirty: false, box: null };

function pixelAt(event) {
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * state.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * state.height);
  return [Math.min(state.width - 1, Math.max(0, x)), Math.min(state.height - 1, Math.max(0, y))];
}

function stamp(cx, cy) {
  const size = Number($("brush-size").value);
  const r = size / 2;
  const reach = Math.ceil(r);
  const { ids, base, width, height } = state;
  const erase = state.tool === "eraser";
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let dy = -reach; dy <= reach; dy++) {
    const y = cy + dy;
    if (y < 0 || y >= height) continue;
    for (let dx = -reach; dx <= reach; dx++) {
      const x = cx + dx;
      if (x < 0 || x >= width || dx * dx + dy * dy > r * r) continue;
      const i = y * width + x;
      const value = erase ? base[i] : state.classId;
      if (ids[i] !== value) {
        ids[i] = value;
        stroke.dirty = true;
      }
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
  }
  if (x1 >= 0) render(x0, y0, x1, y1);
}

function line(xa, ya, xb, yb) {
  // Bresenham: a disc on every pixel of the segment, so fast strokes leave no gaps.
  const dx = Math.abs(xb - xa);
  const dy = -Math.abs(yb - ya);
  const sx = xa < xb ? 1 : -1;
  const sy = ya < yb ? 1 : -1;
  let err = dx + dy;
  for (;;) {
    stamp(xa, ya);
    if (xa === xb && ya === yb) break;
    const e2 = 2 * err;
    if (e2 >= dy) { err += dy; xa += sx; }
    if (e2 <= dx) { err += dx; ya += sy; }
  }
}

function floodFill(x, y, value) {
  const { ids, width, height } = state;
  const target = ids[y * width + x];
  if (target === value) return false;
  const stack = [[x, y]];
  while (stack.length) {
    const [sx, sy] = stack.pop();
    let left = sx;
    const row = sy * width;
    if (ids[row + left] !== target) continue;
    while (left > 0 && ids[row + left - 1] === target) left--;
    let right = sx;
    while (right < width - 1 && ids[row + right + 1] === target) right++;
    for (let i = left; i <= right; i++) ids[row + i] = value;
    for (const ny of [sy - 1, sy + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      let inRun = false;
      for (let i = left; i <= right; i++) {
        const match = ids[nrow + i] === target;
        if (match && !inRun) stack.push([i, ny]);
        inRun = match;
      }
    }
  }
  render();
  return true;
}

function onPointerDown(event) {
  if (event.button !== 0 || !state.ids) return;
  const [x, y] = pixelAt(event);
  if (event.altKey) { // eyedropper
    selectClass(state.ids[y * state.width + x]);
    return;
  }
  event.preventDefault();
  if (state.tool === "fill") {
    const before = state.ids.slice();
    if (floodFill(x, y, state.classId)) {
      state.undo.push(before);
      if (state.undo.length > MAX_UNDO) state.undo.shift();
      state.redo = [];
      changed();
    }
    return;
  }
  canvas.setPointerCapture(event.pointerId);
  stroke.active = true;
  stroke.dirty = false;
  stroke.before = state.ids.slice();
  stroke.x = x;
  stroke.y = y;
  stamp(x, y);
}

function onPointerMove(event) {
  const [x, y] = pixelAt(event);
  if (state.ids) {
    const id = state.ids[y * state.width + x];
    $("cursor-info").textContent = `${x}, ${y}: ${state.names.get(id) ?? `id ${id}`}`;
  }
  if (!stroke.active) return;
  line(stroke.x, stroke.y, x, y);
  stroke.x = x;
  stroke.y = y;
}

function onPointerUp() {
  if (!stroke.active) return;
  stroke.active = false;
  if (stroke.dirty) {
    state.undo.push(stroke.before);
    if (state.undo.length > MAX_UNDO) state.undo.shift();
    state.redo = [];
    changed();
  }
  stroke.before = null;
}

// Prediction ----------------------------------------------------------------

function hashIds(ids) {
  // FNV-1a over the ids: a cache key for images already generated.
  let h = 0x811c9dc5;
  for (let i = 0; i < ids.length; i++) {
    h ^= ids[i];
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16) + ":" + ids.length;
}

function schedulePredict(delay = DEBOUNCE_MS) {
  clearTimeout(state.timer);
  state.timer = setTimeout(predict, delay);
}

function requestBody(pngBase64) {
  const config = state.config;
  const png = { b64: pngBase64 };
  if (config.seed_input) {
    // TF Serving's row format gives every input a batch dimension; the seed
    // (VAE style, SEAN noise) is a scalar, so these models are asked in the columnar format.
    const inputs = { label_png_bytes: [png], seed: state.seed };
    if (config.use_instance_map) inputs.instance_png_bytes = [png];
    const codes = config.sean ? styleCodes() : null;
    if (codes) inputs.style_codes = [codes];
    return { body: { signature_name: codes ? "predict_png_styles" : "predict_png", inputs }, key: "outputs" };
  }
  const instance = { label_png_bytes: png };
  // Class boundaries as instance edges, as synthesize does without instance maps.
  if (config.use_instance_map) instance.instance_png_bytes = png;
  return { body: { signature_name: "predict_png", instances: [instance] }, key: "predictions" };
}

async function predict() {
  if (state.inflight) return; // the running request re-checks the revision when it ends
  state.inflight = true;
  setBusy(true);
  const revision = state.revision;
  const key = `${hashIds(state.ids)}:${state.seed}:${styleKey()}`;
  try {
    let url = state.cache.get(key);
    if (!url) {
      const png = encodeGrayPNG(state.ids, state.width, state.height);
      const { body, key: field } = requestBody(bytesToBase64(png));
      const started = performance.now();
      const answer = await getJSON(state.config.predict_url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const image = answer[field]?.[0]?.b64;
      if (typeof image !== "string") throw new Error(`unexpected response: no ${field}[0].b64`);
      url = `data:image/png;base64,${image}`;
      state.cache.set(key, url);
      if (state.cache.size > MAX_CACHE) state.cache.delete(state.cache.keys().next().value);
      setStatus(`Generated in ${Math.round(performance.now() - started)} ms.`);
    } else {
      setStatus("Generated (from the cache).");
    }
    if (revision === state.revision) {
      output.src = url;
      await output.decode();
      output.dataset.revision = String(revision);
      const link = $("download-image");
      link.href = url;
      link.setAttribute("aria-disabled", "false");
    }
  } catch (error) {
    // fetch() itself fails (TypeError) when the server is unreachable or, for
    // a TF Serving at another origin, does not allow this page by CORS.
    const hint = error instanceof TypeError && state.config.serving_url
      ? ` (is ${state.config.serving_url} up, and does it allow this page's origin by CORS?)` : "";
    setStatus(`Generation failed: ${error.message}${hint}`, "error");
    output.dataset.revision = String(revision); // settled, with an error
  } finally {
    state.inflight = false;
    if (revision !== state.revision) predict();
    else {
      setBusy(false);
      document.body.dataset.settled = "true";
    }
  }
}

// Styles (SEAN) ---------------------------------------------------------------

function styleChannel(id) {
  // The style-code row of a class id: the id, don't care (255) its own channel.
  const sean = state.config.sean;
  if (id === 255 && sean.dontcare_channel !== null) return sean.dontcare_channel;
  return id < sean.channels ? id : -1;
}

function styleCodes() {
  // [channels][style_dim] for predict_png_styles, or null while every region has its mean style.
  const { choice, sources } = state.styles;
  if (!choice.size) return null;
  return state.config.sean.mean_style_codes.map((row, channel) =>
    choice.has(channel) ? sources[choice.get(channel)].codes[channel] : row);
}

function styleKey() {
  return [...state.styles.choice].sort((a, b) => a[0] - b[0]).map(([c, i]) => `${c}=${i}`).join(",");
}

function renderStyleRegions(force = false) {
  // One select per class of the current label map: its mean style or a photo that shows it.
  const seen = new Set(state.ids);
  const classes = state.config.classes.filter((c) => seen.has(c.id) && styleChannel(c.id) >= 0);
  const key = classes.map((c) => c.id).join(",");
  if (key === state.styles.classesKey && !force) return;
  state.styles.classesKey = key;
  const rows = classes.map((c) => {
    const channel = styleChannel(c.id);
    const row = document.createElement("label");
    row.className = "style-row";
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.backgroundColor = `rgb(${c.color.join(",")})`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    const select = document.createElement("select");
    select.dataset.classId = String(c.id);
    select.append(new Option("mean style", ""));
    state.styles.sources.forEach((source, i) => {
      if (source.present[channel]) select.append(new Option(source.name, String(i)));
    });
    select.value = state.styles.choice.has(channel) ? String(state.styles.choice.get(channel)) : "";
    select.addEventListener("change", () => {
      if (select.value === "") state.styles.choice.delete(channel);
      else state.styles.choice.set(channel, Number(select.value));
      $("style-all").value = "";
      invalidate();
    });
    row.append(chip, name, select);
    return row;
  });
  $("style-regions").replaceChildren(...rows);
}

function styleAll(value) {
  // Every region the photo shows takes its style from it; "" resets all to the mean styles.
  state.styles.choice.clear();
  if (value !== "") {
    const index = Number(value);
    state.styles.sources[index].present.forEach((present, channel) => {
      if (present) state.styles.choice.set(channel, index);
    });
  }
  renderStyleRegions(true);
  invalidate();
}

async function addStyle() {
  const photo = $("style-photo").files[0];
  const label = $("style-label").files[0];
  if (!photo || !label) return;
  const base64 = async (file) => bytesToBase64(new Uint8Array(await file.arrayBuffer()));
  try {
    const body = JSON.stringify({ image: await base64(photo), label: await base64(label) });
    const answer = await getJSON("/painter/style", {
      method: "POST", headers: { "Content-Type": "application/json" }, body,
    });
    const index = state.styles.sources.length;
    state.styles.sources.push({ name: photo.name, codes: answer.codes, present: answer.present });
    $("style-all").append(new Option(photo.name, String(index)));
    $("style-all").value = String(index);
    $("style-photo").value = "";
    $("style-label").value = "";
    $("style-add").disabled = true;
    setStatus(`Styles of ${photo.name}: ${answer.present.filter(Boolean).length} regions.`);
    styleAll(String(index));
  } catch (error) {
    setStatus(`Style photo ${photo.name} failed: ${error.message}`, "error");
  }
}

function setUpStyles(sean) {
  $("style-panel").hidden = !sean || !sean.mean_style_codes;
  if ($("style-panel").hidden) return;
  if (!sean.encode) {
    $("style-add-group").hidden = true;
    $("style-hint").textContent = "Each region has its class's mean style (style photos need the painter to load "
      + "the model itself, not --serving_url).";
  }
  const ready = () => { $("style-add").disabled = !($("style-photo").files.length && $("style-label").files.length); };
  $("style-photo").addEventListener("change", ready);
  $("style-label").addEventListener("change", ready);
  $("style-add").addEventListener("click", addStyle);
  $("style-all").addEventListener("change", () => styleAll($("style-all").value));
}

// Palette -------------------------------------------------------------------

function buildPalette(classes) {
  const palette = $("palette");
  for (const c of classes) {
    state.names.set(c.id, c.name);
    state.lut.set(c.color, c.id * 3);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "swatch";
    button.dataset.classId = String(c.id);
    button.title = `${c.id}: ${c.name}`;
    button.setAttribute("role", "option");
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.backgroundColor = `rgb(${c.color.join(",")})`;
    const name = document.createElement("span");
    name.textContent = c.name;
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = String(c.id);
    button.append(chip, name, id);
    button.addEventListener("click", () => selectClass(c.id));
    palette.append(button);
  }
}

function selectClass(id) {
  state.classId = id;
  for (const el of document.querySelectorAll(".swatch")) {
    const selected = Number(el.dataset.classId) === id;
    el.classList.toggle("selected", selected);
    el.setAttribute("aria-selected", String(selected));
  }
  $("current-class").textContent = `${state.names.get(id) ?? "id"} (${id})`;
  const c = state.lut.subarray(id * 3, id * 3 + 3);
  $("current-chip").style.backgroundColor = `rgb(${c[0]},${c[1]},${c[2]})`;
}

function filterPalette() {
  const query = $("class-search").value.trim().toLowerCase();
  for (const el of document.querySelectorAll(".swatch")) {
    const id = el.dataset.classId;
    const name = (state.names.get(Number(id)) || "").toLowerCase();
    el.hidden = query !== "" && !name.includes(query) && id !== query;
  }
}

// Controls ------------------------------------------------------------------

async function upload(file) {
  try {
    const json = await getJSON("/painter/upload", { method: "POST", body: file });
    loadMap(decodeIds(json), `Loaded ${file.name}.`);
  } catch (error) {
    setStatus(`Upload of ${file.name} failed: ${error.message}`, "error");
  }
}

async function newScene() {
  const seed = Math.floor(Math.random() * 2 ** 31);
  try {
    loadMap(decodeIds(await getJSON(`/painter/scene?seed=${seed}`)), `Synthetic scene ${seed}.`);
  } catch (error) {
    setStatus(`New scene failed: ${error.message}`, "error");
  }
}

function downloadLabel() {
  const png = encodeGrayPNG(state.ids, state.width, state.height);
  const url = URL.createObjectURL(new Blob([png], { type: "image/png" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = "label.png";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function setTool(tool) {
  state.tool = tool;
  $(`tool-${tool}`).checked = true;
}

function setBrushSize(size) {
  const input = $("brush-size");
  input.value = String(Math.min(Number(input.max), Math.max(1, size)));
  $("brush-size-value").textContent = input.value;
}

function onKey(event) {
  if (event.target instanceof HTMLInputElement && event.target.type !== "radio" && event.target.type !== "range") return;
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && key === "z") { event.preventDefault(); event.shiftKey ? redo() : undo(); }
  else if (mod && key === "y") { event.preventDefault(); redo(); }
  else if (mod) return;
  else if (key === "b") setTool("brush");
  else if (key === "f") setTool("fill");
  else if (key === "e") setTool("eraser");
  else if (key === "[") setBrushSize(Number($("brush-size").value) - 1);
  else if (key === "]") setBrushSize(Number($("brush-size").value) + 1);
}

function fitViews() {
  // Both views at the model's aspect ratio, side by side beside the tools
  // when the window is wide enough; the longer side at most --view px.
  const most = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--view")) || 480;
  const room = (window.innerWidth - 330) / 2 - 40;
  const view = Math.max(200, Math.min(most, room));
  const scale = view / Math.max(state.width, state.height);
  for (const el of [canvas, output]) {
    el.style.width = `${Math.round(state.width * scale)}px`;
    el.style.height = `${Math.round(state.height * scale)}px`;
  }
}

async function main() {
  const config = await getJSON("/painter/config.json");
  state.config = config;
  [state.height, state.width] = config.image_size;
  canvas.width = state.width;
  canvas.height = state.height;
  state.image = ctx.createImageData(state.width, state.height);
  fitViews();
  window.addEventListener("resize", fitViews);
  for (let id = 0; id < 65536; id++) state.lut.set([128, 128, 128], id * 3); // ids without a class: grey
  buildPalette(config.classes);
  selectClass(config.classes[0].id);
  const size = Math.max(1, Math.round(Math.max(state.width, state.height) / 16));
  $("brush-size").max = String(Math.max(8, Math.round(Math.max(state.width, state.height) / 4)));
  setBrushSize(size);
  const where = config.serving_url ? ` · predictions from ${config.serving_url}` : "";
  $("model-info").textContent =
    `${config.model_name}: ${config.preset}, ${state.width}x${state.height}, ${config.classes.length} classes${where}`;
  $("new-scene").hidden = !config.scenes;
  $("new-style").hidden = !config.use_vae;
  setUpStyles(config.sean);

  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  canvas.addEventListener("pointerleave", () => { $("cursor-info").textContent = ""; });
  for (const tool of ["brush", "fill", "eraser"]) $(`tool-${tool}`).addEventListener("change", () => setTool(tool));
  $("brush-size").addEventListener("input", () => setBrushSize(Number($("brush-size").value)));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", () => {
    pushUndo();
    state.ids.fill(state.classId);
    render();
    changed();
  });
  $("new-scene").addEventListener("click", newScene);
  $("new-style").addEventListener("click", () => {
    state.seed = Math.floor(Math.random() * 2 ** 31);
    setStatus(`Style seed ${state.seed}.`);
    invalidate();
  });
  $("upload-label").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = ""; // the same file can be chosen again
    if (file) upload(file);
  });
  $("download-label").addEventListener("click", downloadLabel);
  $("class-search").addEventListener("input", filterPalette);
  $("class-search").addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    const first = [...document.querySelectorAll(".swatch")].find((el) => !el.hidden);
    if (first) selectClass(Number(first.dataset.classId));
  });
  document.addEventListener("keydown", onKey);

  const start = decodeIds(await getJSON("/painter/start"));
  state.ids = start;
  state.base = start.slice();
  render();
  setStatus("Paint with a class; the image follows each stroke.");
  changed();
}

main().catch((error) => setStatus(`The painter could not start: ${error.message}`, "error"));
