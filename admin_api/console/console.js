// imgorigin console: plain ES module, no dependencies, talks only to the same-origin
// admin API (/api) and the origin (/i/…). Tokens live in this module's memory only:
// a reload signs the user out, and no script can find them in storage.

const $ = (selector, root = document) => root.querySelector(selector);

const session = { access: null, refresh: null, email: null, timer: 0, refreshing: null };
const state = { page: 1, limit: 12, total: 0, items: [], selected: null, chainEdited: false };

// ---- small helpers -------------------------------------------------------------------------

function say(message) {
  $("#status").textContent = message;
}

function formatBytes(n) {
  if (n == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function formatDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) return new ApiError(response.status, body.error.code, body.error.message);
  } catch {
    // not JSON: fall through
  }
  return new ApiError(response.status, "http_error", `HTTP ${response.status}`);
}

// ---- tokens --------------------------------------------------------------------------------

function keepTokens(pair) {
  session.access = pair.access_token;
  session.refresh = pair.refresh_token;
  clearTimeout(session.timer);
  // Refresh a little before the access token expires (the refresh token rotates each time).
  const seconds = Math.max(10, (pair.expires_in || 900) - 60);
  session.timer = setTimeout(() => refreshTokens().catch(() => signedOut("Session expired.")), seconds * 1000);
}

// One refresh at a time: spending the same refresh token twice revokes the whole family.
function refreshTokens() {
  if (!session.refreshing) {
    const token = session.refresh;
    session.refreshing = (async () => {
      if (!token) throw new ApiError(401, "invalid_token", "Not signed in.");
      const response = await fetch("/api/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
      if (!response.ok) throw await errorOf(response);
      keepTokens(await response.json());
    })().finally(() => {
      session.refreshing = null;
    });
  }
  return session.refreshing;
}

async function api(path, { method = "GET", json, retry = true } = {}) {
  const headers = {};
  if (session.access) headers.Authorization = `Bearer ${session.access}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api${path}`, {
    method,
    headers,
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (response.status === 401 && retry && session.refresh) {
    try {
      await refreshTokens();
    } catch {
      signedOut("Your session ended: please log in again.");
      throw await errorOf(response);
    }
    return api(path, { method, json, retry: false });
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

// ---- sign up, log in, log out --------------------------------------------------------------

async function onAuthSubmit(event) {
  event.preventDefault();
  const action = event.submitter ? event.submitter.value : "login";
  const email = $("#email").value.trim();
  const password = $("#password").value;
  const error = $("#auth-error");
  error.textContent = "";
  const form = $("#auth-form");
  form.setAttribute("aria-busy", "true");
  try {
    if (action === "signup") {
      await api("/auth/signup", { method: "POST", json: { email, password }, retry: false });
      say("Account created. Logging in…");
    }
    const pair = await api("/auth/login", { method: "POST", json: { email, password }, retry: false });
    keepTokens(pair);
    session.email = email;
    $("#password").value = "";
    await signedIn();
  } catch (err) {
    error.textContent = err.message;
  } finally {
    form.removeAttribute("aria-busy");
  }
}

async function logOut() {
  const token = session.refresh;
  if (token) {
    try {
      await fetch("/api/auth/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
    } catch {
      // the tokens are forgotten anyway
    }
  }
  signedOut("Logged out.");
}

function signedOut(message) {
  clearTimeout(session.timer);
  Object.assign(session, { access: null, refresh: null, email: null, timer: 0 });
  Object.assign(state, { page: 1, total: 0, items: [], selected: null });
  $("#app-view").hidden = true;
  $("#account").hidden = true;
  $("#builder").hidden = true;
  $("#sources").hidden = true;
  $("#gallery").replaceChildren();
  $("#uploads").replaceChildren();
  $("#auth-view").hidden = false;
  if (message) say(message);
  $("#email").focus();
}

async function signedIn() {
  $("#auth-view").hidden = true;
  $("#app-view").hidden = false;
  $("#account").hidden = false;
  $("#account-email").textContent = session.email;
  say(`Signed in as ${session.email}.`);
  $("#main").focus();
  const [me] = await Promise.all([loadMe(), loadGallery()]);
  // once per sign-in: loadMe runs again after each upload, and would reset the choice
  if (me.operator) await loadSources();
}

async function loadMe() {
  const me = await api("/me");
  session.email = me.email;
  $("#account-email").textContent = me.email;
  const meter = $("#quota-meter");
  meter.max = me.storage_quota_bytes || 1;
  meter.value = me.storage_used_bytes;
  meter.high = meter.max * 0.8;
  meter.optimum = 0;
  $("#quota-text").textContent =
    `${formatBytes(me.storage_used_bytes)} of ${formatBytes(me.storage_quota_bytes)} used`;
  return me;
}

// ---- remote sources (operator accounts) --------------------------------------------------------

async function loadSources() {
  const { items } = await api("/sources");
  const select = $("#source-name");
  select.replaceChildren(
    ...items.map((source) => {
      const option = document.createElement("option");
      option.value = source.name;
      option.textContent = `${source.name} (${source.type})`;
      option.dataset.where = source.base_url || (source.hosts || []).join(", ") ||
        `s3://${source.bucket}/${source.prefix || ""}`;
      return option;
    }),
  );
  const describe = () => {
    const chosen = select.selectedOptions[0];
    $("#source-info").textContent = chosen ? `Objects of ${chosen.dataset.where}` : "";
  };
  select.onchange = describe;
  describe();
  $("#sources").hidden = items.length === 0;
}

function setUpSourceForm() {
  $("#source-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const source = $("#source-name").value;
    const path = $("#source-path").value.trim().replace(/^\/+/, "");
    if (source && path) openBuilder({ kind: "source", source, path, original_filename: path });
  });
}

// ---- uploads -------------------------------------------------------------------------------

function uploadOne(file, item, retry = true) {
  const bar = $("progress", item);
  const note = $(".note", item);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/images");
    xhr.setRequestHeader("Authorization", `Bearer ${session.access}`);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = event.loaded / event.total;
    });
    xhr.addEventListener("load", async () => {
      if (xhr.status === 201) {
        bar.value = 1;
        note.textContent = "Uploaded";
        item.dataset.state = "done";
        resolve(true);
        return;
      }
      if (xhr.status === 401 && retry) {
        try {
          await refreshTokens();
          resolve(await uploadOne(file, item, false));
          return;
        } catch {
          // fall through to the error
        }
      }
      const body = xhr.response;
      note.textContent = body && body.error ? body.error.message : `HTTP ${xhr.status}`;
      item.dataset.state = "error";
      resolve(false);
    });
    xhr.addEventListener("error", () => {
      note.textContent = "Network error: the upload did not reach the server.";
      item.dataset.state = "error";
      resolve(false);
    });
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

async function uploadFiles(files) {
  const list = $("#uploads");
  const jobs = [];
  for (const file of files) {
    const bar = el("progress", { max: "1", value: "0", "aria-label": `Upload progress of ${file.name}` });
    const item = el(
      "li",
      { "data-state": "sending" },
      el("span", { class: "name", text: file.name }),
      el("span", { class: "muted small", text: formatBytes(file.size) }),
      bar,
      el("span", { class: "note", text: "Uploading…" }),
    );
    list.prepend(item);
    jobs.push(uploadOne(file, item));
  }
  const results = await Promise.all(jobs);
  const ok = results.filter(Boolean).length;
  say(`${ok} of ${results.length} file${results.length === 1 ? "" : "s"} uploaded.`);
  if (ok) {
    state.page = 1;
    await Promise.all([loadGallery(), loadMe()]);
  }
}

async function uploadUrl(url) {
  const note = el("span", { class: "note", text: "Fetching…" });
  const item = el("li", { "data-state": "sending" }, el("span", { class: "name", text: url }), note);
  $("#uploads").prepend(item);
  try {
    const image = await api("/images", { method: "POST", json: { url } });
    note.textContent = `Uploaded as ${image.original_filename}`;
    item.dataset.state = "done";
    say("1 image uploaded from a URL.");
    state.page = 1;
    await Promise.all([loadGallery(), loadMe()]);
    return true;
  } catch (error) {
    note.textContent = error.message;
    item.dataset.state = "error";
    say(`Not uploaded: ${error.message}`);
    return false;
  }
}

function setUpUrlForm() {
  const form = $("#url-form");
  const input = $("#url-input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const url = input.value.trim();
    if (url) uploadUrl(url).then((ok) => ok && (input.value = ""));
  });
  // a URL pasted onto the drop zone (or dropped as a link) is uploaded from that URL
  const fromText = (text) => {
    const url = (text || "").trim();
    if (/^https?:\/\/\S+$/i.test(url)) uploadUrl(url);
  };
  document.addEventListener("paste", (event) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
    if ($("#app-view").hidden || event.clipboardData?.files?.length) return;
    fromText(event.clipboardData?.getData("text/plain"));
  });
  $("#dropzone").addEventListener("drop", (event) => {
    if (!event.dataTransfer?.files?.length) fromText(event.dataTransfer?.getData("text/uri-list"));
  });
}

function setUpDropzone() {
  const zone = $("#dropzone");
  const input = $("#file-input");
  input.addEventListener("change", () => {
    if (input.files.length) uploadFiles([...input.files]).finally(() => (input.value = ""));
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = [...(event.dataTransfer?.files || [])];
    if (files.length) uploadFiles(files);
  });
}

// ---- gallery -------------------------------------------------------------------------------

async function loadGallery() {
  const data = await api(`/images?page=${state.page}&limit=${state.limit}`);
  if (!data.items.length && state.page > 1 && data.total > 0) {
    state.page = Math.ceil(data.total / state.limit);
    return loadGallery();
  }
  state.items = data.items;
  state.total = data.total;
  renderGallery();
  fillOverlayChoices();
}

function card(image) {
  const thumb = el("img", {
    src: image.thumbnail_url,
    alt: image.original_filename,
    loading: "lazy",
    width: "256",
    height: "256",
  });
  const details = el(
    "dl",
    { class: "facts" },
    el("dt", { text: "Size" }),
    el("dd", { text: formatBytes(image.size_bytes) }),
    el("dt", { text: "Dimensions" }),
    el("dd", { text: `${image.width} × ${image.height}` }),
    el("dt", { text: "Format" }),
    el("dd", { text: image.format }),
    el("dt", { text: "Uploaded" }),
    el("dd", { text: formatDate(image.created_at) }),
  );
  const edit = el("button", { type: "button", class: "primary", text: "Build URL" });
  edit.addEventListener("click", () => openBuilder(image));
  const remove = el("button", { type: "button", class: "danger ghost", text: "Delete" });
  remove.setAttribute("aria-label", `Delete ${image.original_filename}`);
  edit.setAttribute("aria-label", `Build a URL for ${image.original_filename}`);
  remove.addEventListener("click", () => confirmDelete(image, remove));
  return el(
    "li",
    { class: "tile", "data-id": image.id },
    el("div", { class: "thumb checker" }, thumb),
    el("h3", { class: "name", text: image.original_filename, title: image.original_filename }),
    details,
    el("div", { class: "row" }, edit, remove),
  );
}

function renderGallery() {
  const pages = Math.max(1, Math.ceil(state.total / state.limit));
  $("#gallery").replaceChildren(...state.items.map(card));
  $("#gallery-empty").hidden = state.total > 0;
  $("#gallery-count").textContent = `(${state.total})`;
  $("#page-info").textContent = `Page ${state.page} of ${pages}`;
  $("#prev-page").disabled = state.page <= 1;
  $("#next-page").disabled = state.page >= pages;
}

function confirmDelete(image, opener) {
  const dialog = $("#confirm-delete");
  $("#confirm-text").textContent = `“${image.original_filename}” and every derivative will be removed. Copies already in caches expire on their own.`;
  const buttons = dialog.querySelectorAll("button");
  const onClick = (event) => {
    event.preventDefault();
    dialog.close(event.currentTarget.value);
  };
  buttons.forEach((b) => b.addEventListener("click", onClick));
  dialog.addEventListener(
    "close",
    async () => {
      buttons.forEach((b) => b.removeEventListener("click", onClick));
      if (dialog.returnValue !== "delete") {
        opener.focus();
        return;
      }
      try {
        await api(`/images/${image.id}`, { method: "DELETE" });
        say(`Deleted ${image.original_filename}.`);
        if (state.selected && state.selected.id === image.id) closeBuilder();
        await Promise.all([loadGallery(), loadMe()]);
        $("#gallery-title").focus();
      } catch (err) {
        say(err.message);
      }
    },
    { once: true },
  );
  dialog.returnValue = "";
  dialog.showModal();
}

// ---- URL builder: its controls, from the grammar ------------------------------------------

// GET /api/grammar (public) describes every token, transform and effect; the controls and
// chainFromControls both follow it, so a new token or effect needs no change here. This
// module only adds the layout: which fieldset a phase (or a token's scope) goes to.
const GROUPS = {
  load: "Size and crop",
  geometry: "Size and crop",
  orient: "Orientation and colour",
  setting: "Orientation and colour",
  effect: "Effects",
  output: "Output",
  plan: "Output",
  preset: "Output",
};

// The two kinds of overlay stage: l_text:<text> and l_<image id> (from the gallery page).
const LAYERS = [
  { kind: "text", legend: "Text watermark", prefix: "lt", form: "text:" },
  { kind: "image", legend: "Image watermark", prefix: "li", form: "" },
];
const IMAGE_PICKER = LAYERS[1].prefix; // its <select> lists the gallery page's images

// The grammar's rule for the tokens an image overlay refuses (co_, fs_).
const TEXT_ONLY = "only applies to a text overlay";

const EXPIRIES = [
  ["", "never"],
  ["3600", "in 1 hour"],
  ["86400", "in 1 day"],
  ["604800", "in 7 days"],
];

// The chain's recipe, from the grammar: the base stage's controls in the grammar's token
// order ({key, name}, or {effects} where the effect token stands), then the overlay stages.
const recipe = { base: [], layers: [] };

function capitalised(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function range(low, high) {
  const show = (n) => String(n).replace("-", "−");
  return `${show(low)}…${show(high)}`;
}

// <input pattern> compiles with the "v" flag: keep a pattern only if this browser accepts it.
function usablePattern(source) {
  try {
    new RegExp(`^(?:${source})$`, "v");
    return source;
  } catch {
    return null;
  }
}

function textInput(name, placeholder, pattern, extra = {}) {
  return el("input", { name, placeholder, pattern: usablePattern(pattern), spellcheck: "false", ...extra });
}

// The input for a token's argument: a <select> for a choice, a number input for a bounded
// number, a text input with a pattern for the rest (auto, shares, colours, ratios, names).
// In an overlay stage `auto` is refused, and a choice's default is the overlay's own.
function inputsFor(argument, name, overlay) {
  const a = argument || {};
  const auto = Boolean(a.auto) && !overlay;
  switch (a.type) {
    case "choice": {
      const blank = overlay ? "default" : a.default ? `${a.default} (default)` : "not set";
      const options = (a.options || []).map((o) => el("option", { value: o, text: o }));
      return [el("select", { name }, el("option", { value: "", text: blank }), ...options)];
    }
    case "integer":
    case "decimal": {
      const decimals = a.type === "decimal" ? (a.decimals ?? 2) : 0;
      const span = a.min != null && a.max != null ? range(a.min, a.max) : "";
      if (auto) {
        const number = decimals ? `[0-9]+(\\.[0-9]{1,${decimals}})?` : "-?[0-9]+";
        return [textInput(name, span ? `${span} or auto` : "auto", `${number}|auto`)];
      }
      const step = decimals ? (10 ** -decimals).toFixed(decimals) : "1";
      return [el("input", { name, type: "number", min: a.min, max: a.max, step, placeholder: span })];
    }
    case "length": {
      const pattern = `[0-9]+|[0-9]*\\.[0-9]+${auto ? "|auto(:[0-9]+)?" : ""}`;
      const extra = auto ? {} : { inputmode: "decimal" };
      return [textInput(name, auto ? "px, 0.5 or auto" : "px or 0.5", pattern, extra)];
    }
    case "colour": {
      const hex = (a.formats || []).map((f) => `[0-9A-Fa-f]{${f.length}}`);
      const names = a.names || [];
      const list = `${name}-names`;
      const placeholder = [...(a.formats || []).slice(0, 1), ...names.slice(0, 1)].join(", ") + "…";
      return [
        textInput(name, placeholder, [...hex, ...names].join("|"), { list }),
        el("datalist", { id: list }, ...names.map((n) => el("option", { value: n }))),
      ];
    }
    case "ratio":
      return [textInput(name, a.format || "W:H", "[0-9]+:[0-9]+")];
    case "name":
      return [textInput(name, "name", a.pattern)];
    default:
      return [textInput(name, "", null)];
  }
}

function tokenControl(token, name, overlay = false) {
  const inputs = inputsFor(token.argument, name, overlay);
  inputs[0].title = token.doc;
  return el(
    "label",
    { title: token.doc, "data-token": token.key },
    capitalised(token.title),
    " ",
    el("span", { class: "muted", text: `${token.key}_` }),
    ...inputs,
  );
}

// A checkbox for an effect without an amount; a number input with the declared range
// otherwise, empty meaning "off".
function effectControl(effect) {
  const name = `e_${effect.name}`;
  const label = capitalised(effect.name);
  if (!effect.amount) {
    const box = el("input", { type: "checkbox", name, title: effect.doc });
    return el("label", { class: "check", title: effect.doc, "data-effect": effect.name }, box, ` ${label}`);
  }
  const { min, max } = effect.amount;
  const hint = `${effect.doc} Amount ${range(min, max)}; empty: off.`;
  const placeholder = range(min, max);
  const input = el("input", { name, type: "number", min, max, step: "1", placeholder, title: hint });
  return el("label", { title: hint, "data-effect": effect.name }, label, input);
}

function fieldset(legend, key, ...children) {
  const head = el("legend", {}, legend);
  if (key) head.append(" ", el("span", { class: "muted", text: key }));
  return el("fieldset", {}, head, ...children);
}

function expiryControl() {
  const options = EXPIRIES.map(([v, text]) => el("option", { value: v, text }));
  return el("label", {}, "Expires", el("select", { name: "expires" }, ...options));
}

// A token the base stage takes: not the layer itself, nor one only an overlay reads.
function inBaseStage(token, phaseOf) {
  const type = token.argument?.type;
  if (type === "layer") return false;
  if (type === "effect" || !token.transforms.length) return true;
  return token.transforms.some((t) => phaseOf.get(t) !== "overlay");
}

function groupOf(token, phaseOf) {
  if (token.argument?.type === "effect") return "effect";
  const phase = token.transforms.map((t) => phaseOf.get(t)).find((p) => p && p !== "overlay");
  return phase || token.scope;
}

// The effects: checkboxes first, then the amounts, each in the grammar's order.
function effectBlocks(effects) {
  const checks = effects.filter((e) => !e.amount).map(effectControl);
  const amounts = effects.filter((e) => e.amount).map(effectControl);
  const blocks = [];
  if (checks.length) blocks.push(el("div", { class: "checks" }, ...checks));
  if (amounts.length) blocks.push(el("div", { class: "grid" }, ...amounts));
  return blocks;
}

function layerFieldsets(grammar, tokens) {
  const keys = [];
  for (const t of grammar.transforms) {
    if (t.phase === "overlay") keys.push(...t.tokens.filter((k) => !keys.includes(k)));
  }
  const layer = keys.map((k) => tokens.get(k)).find((t) => t?.argument?.type === "layer");
  if (!layer) return [];
  const limits = grammar.limits || {};
  return LAYERS.map(({ kind, legend, prefix, form }) => {
    const own = keys
      .map((k) => tokens.get(k))
      .filter((t) => t && t !== layer && (kind === "text" || !t.rules.includes(TEXT_ONLY)));
    const head =
      kind === "text"
        ? el("input", { name: prefix, placeholder: "© you", maxlength: limits.max_text_length })
        : el("select", { name: prefix }, el("option", { value: "", text: "none" }));
    head.title = layer.doc;
    const controls = own.map((t) => ({ key: t.key, name: `${prefix}_${t.key}` }));
    recipe.layers.push({ kind, name: prefix, head: `${layer.key}_${form}`, tokens: controls });
    return fieldset(
      legend,
      `${layer.key}_${form}`,
      el(
        "div",
        { class: "grid" },
        el("label", { class: "wide" }, capitalised(kind), head),
        ...own.map((t) => tokenControl(t, `${prefix}_${t.key}`, true)),
      ),
    );
  });
}

// Build every control from the grammar (or, without one, only the expiry): a fieldset per
// group, in the order the grammar first names one of its tokens, then the overlay stages.
function renderControls(grammar) {
  recipe.base = [];
  recipe.layers = [];
  const groups = new Map(); // legend -> { hint, blocks, labels }
  const group = (legend) => {
    if (!groups.has(legend)) groups.set(legend, { hint: "", blocks: [], labels: [] });
    return groups.get(legend);
  };
  let layers = [];
  if (grammar) {
    const phaseOf = new Map(grammar.transforms.map((t) => [t.name, t.phase]));
    const tokens = new Map(grammar.tokens.map((t) => [t.key, t]));
    for (const token of grammar.tokens) {
      if (!inBaseStage(token, phaseOf)) continue;
      const name = groupOf(token, phaseOf);
      const into = group(GROUPS[name] || capitalised(name));
      if (token.argument?.type === "effect") {
        recipe.base.push({ effects: grammar.effects.map((e) => e.name) });
        into.hint = `${token.key}_`;
        into.blocks.push(...effectBlocks(grammar.effects));
      } else {
        recipe.base.push({ key: token.key, name: token.key });
        into.labels.push(tokenControl(token, token.key));
      }
    }
    layers = layerFieldsets(grammar, tokens);
  }
  group(GROUPS.output).labels.push(expiryControl());
  const built = [...groups].map(([legend, { hint, blocks, labels }]) => {
    const parts = [...blocks];
    if (labels.length) parts.push(el("div", { class: "grid" }, ...labels));
    return fieldset(legend, hint, ...parts);
  });
  $("#stage-controls").replaceChildren(...built, ...layers);
}

let grammarLoading = null;

// GET /api/grammar, then the controls; on failure the builder says so, and the chain can
// still be written by hand. Opening the builder again retries.
function loadGrammar() {
  if (!grammarLoading) {
    grammarLoading = buildFromGrammar().finally(() => {
      grammarLoading = null;
    });
  }
  return grammarLoading;
}

async function buildFromGrammar() {
  const form = $("#controls");
  const status = $("#grammar-status");
  form.dataset.grammar = "loading";
  form.setAttribute("aria-busy", "true");
  status.className = "muted small";
  status.textContent = "Loading the URL grammar…";
  status.hidden = false;
  try {
    const response = await fetch("/api/grammar");
    if (!response.ok) throw await errorOf(response);
    renderControls(await response.json());
    status.hidden = true;
    status.textContent = "";
    form.dataset.grammar = "ready";
  } catch (err) {
    renderControls(null);
    status.className = "error";
    status.textContent =
      `The controls could not be built: GET /api/grammar failed (${err.message}). ` +
      "The chain below can still be edited by hand.";
    form.dataset.grammar = "error";
  } finally {
    form.removeAttribute("aria-busy");
  }
  fillOverlayChoices();
  if (state.selected && !state.chainEdited) onControlsChanged();
}

function fillOverlayChoices() {
  const select = $(`#controls [name=${IMAGE_PICKER}]`);
  if (!select) return;
  const current = select.value;
  const options = [el("option", { value: "", text: "none" })];
  for (const image of state.items) {
    if (state.selected && image.id === state.selected.id) continue;
    options.push(el("option", { value: image.id, text: image.original_filename }));
  }
  select.replaceChildren(...options);
  select.value = [...select.options].some((o) => o.value === current) ? current : "";
}

function value(name) {
  const field = $(`#controls [name="${name}"]`);
  if (!field) return "";
  if (field.type === "checkbox") return field.checked;
  return field.value.trim();
}

// The controls as a chain, in the grammar's order: the base stage (its effects where the
// effect token stands, in the grammar's order), then one stage per overlay.
function chainFromControls() {
  const base = [];
  for (const item of recipe.base) {
    if (item.effects) {
      for (const name of item.effects) {
        const v = value(`e_${name}`);
        if (v === true) base.push(`e_${name}`);
        else if (v !== false && v !== "") base.push(`e_${name}:${v}`);
      }
      continue;
    }
    const v = value(item.name);
    if (v !== "") base.push(`${item.key}_${v}`);
  }
  const stages = [base.join(",")];
  for (const layer of recipe.layers) {
    const ref = value(layer.name);
    if (!ref) continue;
    const head = `${layer.head}${layer.kind === "text" ? encodeURIComponent(ref) : ref}`;
    const own = layer.tokens.map((t) => [t.key, value(t.name)]).filter(([, v]) => v !== "");
    stages.push([head, ...own.map(([k, v]) => `${k}_${v}`)].join(","));
  }
  return stages.filter(Boolean).join("/");
}

function onControlsChanged() {
  state.chainEdited = false;
  $("#chain").value = chainFromControls();
  forgetPicture();
  schedulePreview();
}

function openBuilder(image) {
  state.selected = image;
  $("#builder").hidden = false;
  $("#builder-name").textContent =
    image.kind === "source"
      ? `— ${image.source}: ${image.path}`
      : `— ${image.original_filename} (${image.width} × ${image.height})`;
  if ($("#controls").dataset.grammar === "error") loadGrammar();
  fillOverlayChoices();
  onControlsChanged();
  $("#builder-title").focus();
  $("#builder").scrollIntoView({ block: "start" });
}

function closeBuilder() {
  state.selected = null;
  $("#builder").hidden = true;
}

let previewSeq = 0;
const schedulePreview = debounce(() => renderPreview(), 250);

function setPreviewState(name) {
  const figure = $("#preview");
  figure.dataset.state = name;
  figure.setAttribute("aria-busy", String(name === "loading"));
}

// The server signs (an operator key for a source object): no key ever reaches the browser.
async function mint(image, transform, format, expires) {
  const body = { transform };
  if (format) body.format = format;
  if (expires) body.expires_in = Number(expires);
  if (image.kind === "source") {
    body.path = image.path;
    const name = encodeURIComponent(image.source);
    return (await api(`/sources/${name}/url`, { method: "POST", json: body })).url;
  }
  return (await api(`/images/${image.id}/url`, { method: "POST", json: body })).url;
}

function loaded(img, src) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error("The origin could not render this chain."));
    img.src = src;
  });
}

async function renderPreview() {
  const image = state.selected;
  if (!image) return;
  const seq = ++previewSeq;
  const chain = $("#chain").value.trim().replace(/^\/+|\/+$/g, "");
  const expires = value("expires");
  const error = $("#chain-error");
  setPreviewState("loading");
  $("#preview").dataset.chain = chain;
  try {
    const [url, metaUrl] = await Promise.all([
      mint(image, chain, null, expires),
      mint(image, chain, "json", expires),
    ]);
    if (seq !== previewSeq) return;
    const absolute = new URL(url, location.origin).href;
    $("#signed-url").value = absolute;
    const metaResponse = await fetch(metaUrl);
    if (!metaResponse.ok) throw await errorOf(metaResponse);
    const meta = await metaResponse.json();
    if (seq !== previewSeq) return;
    $("#img-tag").value =
      `<img src="${absolute}" width="${meta.width}" height="${meta.height}" alt="${image.original_filename.replace(/"/g, "&quot;")}">`;
    await loaded($("#preview-img"), url);
    if (seq !== previewSeq) return;
    error.textContent = "";
    $("#preview-info").textContent =
      `${meta.width} × ${meta.height} · ${meta.format} · ${formatBytes(meta.bytes)}`;
    setPreviewState("ready");
  } catch (err) {
    if (seq !== previewSeq) return;
    error.textContent = err.message;
    $("#preview-info").textContent = "—";
    setPreviewState("error");
  }
}

// ---- <picture> -----------------------------------------------------------------------------

// The builder's chain as GET /api/images/{id}/srcset takes it: the widths come from the
// API's ladder, and an f_ becomes `formats` (f_auto, or none: AVIF, WebP and JPEG).
function srcsetQuery(image, chain, expires) {
  let formats = "";
  const stages = chain
    .split("/")
    .map((stage) =>
      stage
        .split(",")
        .filter((token) => {
          if (!token.startsWith("f_")) return true;
          if (token !== "f_auto") formats = token.slice(2);
          return false;
        })
        .join(","),
    )
    .filter(Boolean);
  const params = new URLSearchParams();
  if (stages.length) params.set("transform", stages.join("/"));
  if (formats) params.set("formats", formats);
  // alt: the name, as the <img> tag has it (every kind of space as a plain one: printable)
  params.set("alt", image.original_filename.replace(/\p{Z}/gu, " ").slice(0, 500));
  if (expires) params.set("expires_in", expires);
  return params;
}

function forgetPicture() {
  $("#picture-tag").value = "";
  $("#picture-error").textContent = "";
}

async function copyPicture() {
  const image = state.selected;
  if (!image) return;
  if (image.kind === "source") {
    $("#picture-error").textContent = "The <picture> element is made for uploaded images.";
    return;
  }
  const button = $("#copy-picture");
  const chain = $("#chain").value.trim().replace(/^\/+|\/+$/g, "");
  forgetPicture();
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const query = srcsetQuery(image, chain, value("expires"));
    const answer = await api(`/images/${image.id}/srcset?${query}`);
    if (state.selected !== image) return;
    $("#picture-tag").value = answer.picture;
    await copy(answer.picture, "<picture> element");
  } catch (err) {
    $("#picture-error").textContent = err.message;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    say(`${what} copied to the clipboard.`);
  } catch {
    say(`Copying is not allowed here: select the ${what} field and copy it by hand.`);
  }
}

function setUpBuilder() {
  const controls = $("#controls");
  controls.addEventListener("input", onControlsChanged);
  controls.addEventListener("change", onControlsChanged);
  controls.addEventListener("submit", (event) => event.preventDefault());
  $("#chain").addEventListener("input", () => {
    state.chainEdited = true;
    forgetPicture();
    schedulePreview();
  });
  $("#reset-builder").addEventListener("click", () => {
    controls.reset();
    onControlsChanged();
  });
  $("#copy-url").addEventListener("click", () => copy($("#signed-url").value, "Signed URL"));
  $("#copy-img").addEventListener("click", () => copy($("#img-tag").value, "<img> tag"));
  $("#copy-picture").addEventListener("click", copyPicture);
  for (const id of ["#signed-url", "#img-tag", "#picture-tag"]) {
    $(id).addEventListener("focus", (event) => event.target.select());
  }
}

// ---- start ---------------------------------------------------------------------------------

function start() {
  $("#auth-form").addEventListener("submit", onAuthSubmit);
  $("#logout").addEventListener("click", logOut);
  $("#prev-page").addEventListener("click", () => {
    state.page -= 1;
    loadGallery().catch((err) => say(err.message));
  });
  $("#next-page").addEventListener("click", () => {
    state.page += 1;
    loadGallery().catch((err) => say(err.message));
  });
  $("#gallery-title").tabIndex = -1;
  $("#builder-title").tabIndex = -1;
  setUpDropzone();
  setUpUrlForm();
  setUpSourceForm();
  setUpBuilder();
  signedOut("");
  document.body.dataset.ready = "true";
  loadGrammar();
}

start();
