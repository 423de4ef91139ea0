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

// Text as an HTML attribute value in double quotes (for markup the user copies).
function attribute(text) {
  const entities = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;" };
  return text.replace(/[&<>"']/g, (c) => entities[c]);
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
  closeBuilder();
  $("#sources").hidden = true;
  $("#gallery").replaceChildren();
  $("#uploads").replaceChildren();
  forgetWebhooks();
  forgetTransformations();
  $("#account-public").checked = false;
  $("#account-public-error").textContent = "";
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
  loadWebhooks().catch((err) => ($("#webhooks-status").textContent = err.message));
  loadTransformations().catch((err) => ($("#transformations-status").textContent = err.message));
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
  if (!account.saving) $("#account-public").checked = Boolean(me.public);
  return me;
}

// ---- the account's default for new uploads (PATCH /api/me {"public"}) ---------------------------

const account = { saving: false };

async function setAccountPublic() {
  const box = $("#account-public");
  const wanted = box.checked;
  const error = $("#account-public-error");
  error.textContent = "";
  account.saving = true;
  box.setAttribute("aria-busy", "true");
  try {
    const me = await api("/me", { method: "PATCH", json: { public: wanted } });
    box.checked = Boolean(me.public);
    say(me.public ? "New uploads are public from now on." : "New uploads are private from now on.");
  } catch (err) {
    box.checked = !wanted;
    error.textContent = err.message;
  } finally {
    account.saving = false;
    box.removeAttribute("aria-busy");
  }
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
        note.textContent = xhr.response && xhr.response.public ? "Uploaded · public" : "Uploaded";
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
    note.textContent = `Uploaded as ${image.original_filename}${image.public ? " · public" : ""}`;
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
  const box = el("input", { type: "checkbox", name: "public" });
  box.checked = Boolean(image.public);
  box.setAttribute("aria-label", `Public: ${image.original_filename}`);
  box.addEventListener("change", () => setPublic(image, box.checked, box));
  const publicSwitch = el(
    "label",
    { class: "check small public-switch", title: "Public: its unsigned URLs load without a signature" },
    box,
    " Public",
  );
  return el(
    "li",
    { class: "tile", "data-id": image.id, "data-public": String(Boolean(image.public)) },
    el("div", { class: "thumb checker" }, thumb),
    el("h3", { class: "name", text: image.original_filename, title: image.original_filename }),
    details,
    publicSwitch,
    el("div", { class: "row" }, edit, remove),
  );
}

// ---- public or private (PATCH /api/images/{id} {"public"}) ------------------------------------

const publicPending = new Set(); // image ids with a change on its way

async function setPublic(image, wanted, box) {
  if (publicPending.has(image.id)) {
    box.checked = !wanted; // one change at a time
    return;
  }
  publicPending.add(image.id);
  box.setAttribute("aria-busy", "true");
  if (state.selected && state.selected.id === image.id) $("#public-error").textContent = "";
  try {
    const updated = await api(`/images/${image.id}`, { method: "PATCH", json: { public: wanted } });
    imageChanged(updated);
    say(
      updated.public
        ? `${updated.original_filename} is public: its unsigned URLs load without a signature.`
        : `${updated.original_filename} is private: only signed URLs load it.`,
    );
  } catch (err) {
    box.checked = !wanted;
    say(`${image.original_filename} was not changed: ${err.message}`);
    if (state.selected && state.selected.id === image.id) $("#public-error").textContent = err.message;
  } finally {
    publicPending.delete(image.id);
    box.removeAttribute("aria-busy");
  }
}

// An image's new JSON: every copy of it (the gallery page's, the builder's) and their views.
function imageChanged(updated) {
  for (const image of [...state.items, state.selected]) {
    if (image && image.kind !== "source" && image.id === updated.id) Object.assign(image, updated);
  }
  const tile = $(`#gallery li.tile[data-id="${updated.id}"]`);
  if (tile) {
    tile.dataset.public = String(Boolean(updated.public));
    $('input[name="public"]', tile).checked = Boolean(updated.public);
  }
  if (state.selected && state.selected.id === updated.id) renderPublic();
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

// The confirmation dialog: true when its danger button (labelled `yes`) was pressed.
function confirmed(title, text, yes) {
  const dialog = $("#confirm-delete");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-yes").textContent = yes;
  const buttons = dialog.querySelectorAll("button");
  const onClick = (event) => {
    event.preventDefault();
    dialog.close(event.currentTarget.value);
  };
  buttons.forEach((b) => b.addEventListener("click", onClick));
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        buttons.forEach((b) => b.removeEventListener("click", onClick));
        resolve(dialog.returnValue === "delete");
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function confirmDelete(image, opener) {
  const yes = await confirmed(
    "Delete this image?",
    `“${image.original_filename}” and every derivative will be removed. Copies already in caches expire on their own.`,
    "Delete",
  );
  if (!yes) {
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
// In an overlay stage `auto` is refused, a choice offers what an overlay takes
// (overlay_options: g_'s compass points), and its default is the overlay's own.
function inputsFor(argument, name, overlay) {
  const a = argument || {};
  const auto = Boolean(a.auto) && !overlay;
  switch (a.type) {
    case "choice": {
      const blank = overlay ? "default" : a.default ? `${a.default} (default)` : "not set";
      const offered = (overlay && a.overlay_options) || a.options || [];
      const options = offered.map((o) => el("option", { value: o, text: o }));
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
      // b_'s fills, "auto" and "blurred[:1..2000]": the word, then an optional ":<n>"
      const fills = (a.fills || []).map((f) => (f.includes("[") ? `${f.split("[")[0]}(:[0-9]+)?` : f));
      const list = `${name}-names`;
      const placeholder = [...(a.formats || []).slice(0, 1), ...names.slice(0, 1)].join(", ") + "…";
      return [
        textInput(name, placeholder, [...hex, ...names, ...fills].join("|"), { list }),
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
    const grammar = await response.json();
    renderControls(grammar);
    fillEagerFormats(grammar.formats);
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
  // A chosen image no longer on this gallery page stays chosen (the chain still names it),
  // unless it is the image the builder now shows (never its own watermark).
  const keep = current && !(state.selected && current === state.selected.id);
  if (keep && !options.some((o) => o.value === current)) {
    options.push(el("option", { value: current, text: `${current.slice(0, 8)}… (not on this page)` }));
  }
  select.replaceChildren(...options);
  select.value = keep ? current : "";
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
  signAgain();
}

// The chain or the expiry changed: the <picture> made for the old ones goes, a preview follows.
function signAgain() {
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
  $("#public-error").textContent = "";
  renderPublic();
  showEager(image);
  $("#builder-title").focus();
  $("#builder").scrollIntoView({ block: "start" });
}

function closeBuilder() {
  state.selected = null;
  $("#builder").hidden = true;
  renderPublic();
  hideEager();
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
      `<img src="${absolute}" width="${meta.width}" height="${meta.height}" alt="${attribute(image.original_filename)}">`;
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
    // nothing to copy for a chain that does not render: not the last one's URL
    $("#signed-url").value = "";
    $("#img-tag").value = "";
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
  // Expires is not part of the chain: it signs again, and keeps a chain written by hand.
  const changed = (event) => (event.target.name === "expires" ? signAgain() : onControlsChanged());
  controls.addEventListener("input", changed);
  controls.addEventListener("change", changed);
  controls.addEventListener("submit", (event) => event.preventDefault());
  $("#chain").addEventListener("input", () => {
    state.chainEdited = true;
    signAgain();
  });
  $("#reset-builder").addEventListener("click", () => {
    controls.reset();
    onControlsChanged();
  });
  $("#close-builder").addEventListener("click", () => {
    closeBuilder();
    $("#gallery-title").focus();
  });
  $("#copy-url").addEventListener("click", () => copy($("#signed-url").value, "Signed URL"));
  $("#copy-img").addEventListener("click", () => copy($("#img-tag").value, "<img> tag"));
  $("#copy-picture").addEventListener("click", copyPicture);
  for (const id of ["#signed-url", "#img-tag", "#picture-tag"]) {
    $(id).addEventListener("focus", (event) => event.target.select());
  }
}

// ---- eager derivatives ---------------------------------------------------------------------

// The builder's uploaded image's eager derivatives: made by the server's background jobs,
// listed by GET /api/images/{id}, which is asked again about every second while one of them
// is queued or running, and only while that image is the one shown. `seq` drops an answer
// that comes back after the view moved on (or after a newer answer).
const EAGER_POLL_MS = 1000;
const EAGER_RETRY_MS = 5000;
const EAGER_STATES = { queued: "Queued", running: "Running", done: "Done", failed: "Failed" };
const eager = { imageId: null, timer: 0, seq: 0 };

function pendingDerivative(derivative) {
  return derivative.state === "queued" || derivative.state === "running";
}

// The formats the grammar lists (the page's own list stands in until it answers).
function fillEagerFormats(formats) {
  if (!Array.isArray(formats) || !formats.length) return;
  const select = $("#eager-format");
  const current = select.value;
  select.replaceChildren(...formats.map((f) => el("option", { value: f, text: f })));
  select.value = formats.includes(current) ? current : formats[0];
}

function derivativeItem(d) {
  const chain = d.transform || "(the original)";
  const what = `${chain} as ${d.format}`;
  const label = EAGER_STATES[d.state] || d.state;
  const head = el(
    "div",
    { class: "what" },
    el("code", { class: "chain", text: chain }),
    el("span", { class: "muted small", text: ` → ${d.format}` }),
  );
  const badge = el("span", { class: "badge", "data-state": d.state, text: label });
  const status = el("div", { class: "row" }, badge);
  let thumb = el("div", { class: "thumb checker", "aria-hidden": "true" });
  if (d.state === "done") {
    const img = el("img", { src: d.url, alt: "", loading: "lazy" });
    const link = { href: d.url, target: "_blank", rel: "noopener noreferrer" };
    // the thumbnail repeats the "Open" link: one tab stop, one announcement
    thumb = el("a", { class: "thumb checker", ...link, tabindex: "-1", "aria-hidden": "true" }, img);
    const open = el("a", { class: "open", ...link, text: "Open" });
    open.setAttribute("aria-label", `Open ${what}`);
    const copyUrl = el("button", { type: "button", class: "ghost", text: "Copy URL" });
    copyUrl.setAttribute("aria-label", `Copy the signed URL of ${what}`);
    copyUrl.addEventListener("click", () => copy(new URL(d.url, location.origin).href, "Derivative URL"));
    status.append(
      el("span", { class: "muted small", text: `${d.width} × ${d.height} · ${formatBytes(d.size_bytes)}` }),
      open,
      copyUrl,
    );
  } else if (d.state === "failed") {
    status.append(el("span", { class: "note", text: `Error: ${d.error || "unknown"}` }));
  }
  return el(
    "li",
    { class: "derivative", "data-id": d.id, "data-state": d.state },
    thumb,
    el("div", { class: "about" }, head, status),
  );
}

// Keyed by id: an unchanged derivative keeps its node (its thumbnail is not fetched again).
function renderEager(list) {
  const shown = new Map([...$("#eager-list").children].map((li) => [li.dataset.id, li]));
  const items = list.map((d) => {
    const signature = JSON.stringify(d);
    const old = shown.get(d.id);
    if (old && old.dataset.signature === signature) return old;
    const item = derivativeItem(d);
    item.dataset.signature = signature;
    return item;
  });
  $("#eager-list").replaceChildren(...items);
  $("#eager-empty").hidden = list.length > 0;
  const count = (name) => list.filter((d) => d.state === name).length;
  const parts = list.length ? [`${count("done")} of ${list.length} done`] : [];
  if (count("failed")) parts.push(`${count("failed")} failed`);
  if (list.some(pendingDerivative)) parts.push("refreshing…");
  const summary = parts.join(" · ");
  // only a change is announced
  if ($("#eager-summary").textContent !== summary) $("#eager-summary").textContent = summary;
  $("#eager").dataset.pending = String(list.some(pendingDerivative));
}

function eagerShown(list) {
  renderEager(list);
  clearTimeout(eager.timer);
  eager.timer = list.some(pendingDerivative) ? setTimeout(pollEager, EAGER_POLL_MS) : 0;
}

async function pollEager() {
  const { imageId, seq } = eager;
  if (!imageId) return;
  clearTimeout(eager.timer);
  try {
    const image = await api(`/images/${imageId}`);
    if (seq !== eager.seq) return;
    $("#eager-status").textContent = "";
    eagerShown(image.eager || []);
  } catch (err) {
    if (seq !== eager.seq) return;
    if (err.status === 404) {
      $("#eager-status").textContent = "This image no longer exists.";
      stopEager();
      return;
    }
    $("#eager-status").textContent = `Could not refresh the derivatives: ${err.message}`;
    eager.timer = setTimeout(pollEager, EAGER_RETRY_MS);
  }
}

function stopEager() {
  clearTimeout(eager.timer);
  Object.assign(eager, { imageId: null, timer: 0, seq: eager.seq + 1 });
}

// The builder opened `image`: its derivatives as the gallery page had them, then fresh ones.
function showEager(image) {
  stopEager();
  if (image.kind === "source") {
    hideEager();
    return;
  }
  eager.imageId = image.id;
  $("#eager-list").replaceChildren();
  $("#eager-status").textContent = "";
  $("#eager-error").textContent = "";
  $("#eager").hidden = false;
  renderEager(image.eager || []);
  pollEager();
}

function hideEager() {
  stopEager();
  $("#eager").hidden = true;
  $("#eager-list").replaceChildren();
  $("#eager-summary").textContent = "";
  $("#eager-status").textContent = "";
  $("#eager-error").textContent = "";
}

// POST /api/images/{id}/eager with one {transform, format}: 202 with the image's list.
async function requestEager(event) {
  event.preventDefault();
  const imageId = eager.imageId;
  if (!imageId) return;
  const transform = $("#eager-transform").value.trim().replace(/^\/+|\/+$/g, "");
  const format = $("#eager-format").value;
  const error = $("#eager-error");
  const button = $("#eager-add");
  error.textContent = "";
  button.disabled = true;
  $("#eager-form").setAttribute("aria-busy", "true");
  try {
    const answer = await api(`/images/${imageId}/eager`, {
      method: "POST",
      json: { eager: [{ transform, format }] },
    });
    if (eager.imageId !== imageId) return;
    eager.seq += 1; // an older refresh still on its way would show the list without this one
    say(`Requested ${transform || "the original"} as ${format}: it is made in the background.`);
    eagerShown(answer.eager);
  } catch (err) {
    if (eager.imageId === imageId) error.textContent = err.message;
  } finally {
    button.disabled = false;
    $("#eager-form").removeAttribute("aria-busy");
  }
}

function setUpEager() {
  $("#eager-form").addEventListener("submit", requestEager);
}

// ---- public delivery (in the builder) -----------------------------------------------------------

// The seo name of an image's URLs: the last segment of its signed `url`, without the extension
// (the origin's url_name of the original filename: the only one an unsigned URL may use).
function seoName(image) {
  const path = new URL(image.url, location.origin).pathname;
  const last = path.slice(path.lastIndexOf("/") + 1);
  const dot = last.lastIndexOf(".");
  return dot > 0 ? last.slice(0, dot) : last;
}

// The unsigned URL of a public image through one of the user's transformations (root-relative).
function unsignedUrl(image, transformation) {
  return `/i/${image.id}/t_${transformation.name}/${seoName(image)}.${transformation.formats[0]}`;
}

// Those serving a public image unsigned: marked so, and not hidden by an operator preset
// (whose definition, and whose own `unsigned`, the URL would get instead).
function unsignedTransformations() {
  return named.items.filter((t) => t.unsigned && !t.shadowed && t.formats.length);
}

function unsignedItem(image, transformation) {
  const url = unsignedUrl(image, transformation);
  const absolute = new URL(url, location.origin).href;
  const ext = transformation.formats[0];
  const link = { href: url, target: "_blank", rel: "noopener noreferrer" };
  const thumb =
    ext === "json"
      ? el("div", { class: "thumb checker", "aria-hidden": "true" }, el("code", { text: "json" }))
      : el(
          "a",
          { class: "thumb checker", ...link, tabindex: "-1", "aria-hidden": "true" },
          el("img", { src: url, alt: "", loading: "lazy" }),
        );
  const open = el("a", { class: "open", ...link, text: "Open" });
  open.setAttribute("aria-label", `Open the unsigned URL of t_${transformation.name}`);
  const copyUrl = el("button", { type: "button", class: "ghost", text: "Copy URL" });
  copyUrl.setAttribute("aria-label", `Copy the unsigned URL of t_${transformation.name}`);
  copyUrl.addEventListener("click", () => copy(absolute, "Unsigned URL"));
  return el(
    "li",
    { class: "derivative unsigned-url", "data-name": transformation.name },
    thumb,
    el(
      "div",
      { class: "about" },
      el("code", { class: "chain", text: `t_${transformation.name}` }),
      el("code", { class: "url small", text: url }),
      el("div", { class: "row" }, open, copyUrl),
    ),
  );
}

// The builder's uploaded image: public or private, and its unsigned URLs when public.
function renderPublic() {
  const image = state.selected;
  const section = $("#public");
  if (!image || image.kind === "source") {
    section.hidden = true;
    $("#public-urls").replaceChildren();
    return;
  }
  section.hidden = false;
  const isPublic = Boolean(image.public);
  $("#public-toggle").checked = isPublic;
  section.dataset.public = String(isPublic);
  $("#public-state").textContent = isPublic
    ? "Public: besides its signed URLs, it loads without a signature through your transformations marked “unsigned URLs”, as below."
    : "Private: only signed URLs load it. Make it public to link it from pages that cannot sign URLs.";
  const usable = isPublic ? unsignedTransformations() : [];
  const shown = new Map([...$("#public-urls").children].map((li) => [li.dataset.key, li]));
  $("#public-urls").replaceChildren(
    ...usable.map((t) => {
      const key = unsignedUrl(image, t);
      const old = shown.get(key);
      if (old && old.dataset.updated === t.updated_at) return old; // keeps its loaded preview
      const item = unsignedItem(image, t);
      item.dataset.key = key;
      item.dataset.updated = t.updated_at;
      return item;
    }),
  );
  const empty = $("#public-empty");
  empty.hidden = !isPublic || usable.length > 0;
  empty.textContent = isPublic
    ? "None of your named transformations is marked “unsigned URLs”: save one below to link this image without a signature."
    : "";
}

function setUpPublic() {
  const box = $("#public-toggle");
  box.addEventListener("change", () => {
    if (state.selected && state.selected.kind !== "source") setPublic(state.selected, box.checked, box);
  });
  $("#account-public").addEventListener("change", setAccountPublic);
}

// ---- named transformations -------------------------------------------------------------------

// The account's transformations (GET /api/transformations), saved with PUT (201 made, 200
// replaced) and removed with DELETE. A shadowed one is hidden by an operator preset of the
// same name: t_<name> in a URL means the preset.
const TRANSFORMATION_NAME = /^[a-z0-9_-]{1,64}$/;
const named = { items: [], seq: 0 };

async function loadTransformations() {
  const seq = named.seq;
  const { items } = await api("/transformations");
  if (seq !== named.seq) return;
  named.items = items;
  $("#transformations-status").textContent = "";
  renderTransformations();
  renderPublic();
}

function renderTransformations() {
  $("#transformation-list").replaceChildren(...named.items.map(transformationItem));
  $("#transformations-empty").hidden = named.items.length > 0;
  $("#transformations-count").textContent = `(${named.items.length})`;
}

function transformationItem(t) {
  const label = `t_${t.name}`;
  const button = (text, what, extra = {}) => {
    const b = el("button", { type: "button", text, ...extra });
    b.setAttribute("aria-label", `${what} ${label}`);
    return b;
  };
  const edit = button("Edit", "Edit");
  const remove = button("Delete", "Delete", { class: "danger ghost" });
  const error = el("p", { class: "error", role: "alert" });
  edit.addEventListener("click", () => editTransformation(t));
  remove.addEventListener("click", () => deleteTransformation(t, remove, error));
  const badges = el(
    "div",
    { class: "row" },
    el("span", {
      class: "badge",
      "data-state": t.unsigned ? "unsigned" : "signed",
      text: t.unsigned ? "unsigned URLs" : "signed only",
    }),
  );
  if (t.shadowed) badges.append(el("span", { class: "badge", "data-state": "shadowed", text: "shadowed" }));
  const facts = [
    t.unsigned ? `Unsigned as ${t.formats.join(", ")}` : `Formats ${t.formats.join(", ")}`,
    `updated ${formatDate(t.updated_at)}`,
  ];
  const item = el(
    "li",
    { class: "transformation", "data-name": t.name, "data-shadowed": String(Boolean(t.shadowed)) },
    el(
      "div",
      { class: "hook-head" },
      el("code", { class: "t-name", text: label }),
      el("div", { class: "row" }, edit, remove),
    ),
    el("code", { class: "t-chain", text: t.transform }),
    badges,
    el("p", { class: "muted small", text: facts.join(" · ") }),
  );
  if (t.shadowed) {
    item.append(
      el("p", {
        class: "warning shadowed",
        text: `Shadowed: hidden by an operator preset of the same name. ${label} in a URL means the preset, not this chain; choose another name to use it.`,
      }),
    );
  }
  item.append(error);
  return item;
}

function editTransformation(t) {
  $("#transformation-error").textContent = "";
  $("#transformation-name").value = t.name;
  $("#transformation-transform").value = t.transform;
  $("#transformation-formats").value = t.formats.join(", ");
  $("#transformation-unsigned").checked = Boolean(t.unsigned);
  $("#transformation-form").scrollIntoView({ block: "nearest" });
  $("#transformation-transform").focus();
  say(`Editing t_${t.name}: save to replace it.`);
}

async function saveTransformation(event) {
  event.preventDefault();
  const name = $("#transformation-name").value.trim();
  const transform = $("#transformation-transform").value.trim().replace(/^\/+|\/+$/g, "");
  const formats = $("#transformation-formats")
    .value.split(/[\s,]+/)
    .map((f) => f.toLowerCase())
    .filter(Boolean);
  const error = $("#transformation-error");
  error.textContent = "";
  if (!TRANSFORMATION_NAME.test(name)) {
    error.textContent = "A name is 1 to 64 characters of a–z, 0–9, _ and -.";
    $("#transformation-name").focus();
    return;
  }
  const body = { transform, unsigned: $("#transformation-unsigned").checked };
  if (formats.length) body.formats = formats; // none: the API's default
  const form = $("#transformation-form");
  await submitting(form, $("#transformation-save"), error, async () => {
    const saved = await api(`/transformations/${encodeURIComponent(name)}`, { method: "PUT", json: body });
    form.reset();
    const made = saved.created_at === saved.updated_at; // as the API tells 201 from 200
    say(`${made ? "Created" : "Replaced"} t_${saved.name}: ${saved.transform}.`);
    await loadTransformations();
  });
}

/** Run a form's request: the form busy and its button off meanwhile, a refusal shown
 * under it in the API's words. */
async function submitting(form, button, error, work) {
  form.setAttribute("aria-busy", "true");
  button.disabled = true;
  try {
    await work();
  } catch (err) {
    error.textContent = err.message;
  } finally {
    form.removeAttribute("aria-busy");
    button.disabled = false;
  }
}

async function deleteTransformation(t, button, error) {
  const yes = await confirmed(
    "Delete this transformation?",
    `t_${t.name} (${t.transform}) stops working in every URL that uses it, signed or unsigned.`,
    "Delete",
  );
  if (!yes) {
    button.focus();
    return;
  }
  error.textContent = "";
  try {
    await api(`/transformations/${encodeURIComponent(t.name)}`, { method: "DELETE" });
    say(`Deleted t_${t.name}.`);
    await loadTransformations();
    $("#transformations-title").focus();
  } catch (err) {
    error.textContent = err.message;
  }
}

function forgetTransformations() {
  Object.assign(named, { items: [], seq: named.seq + 1 });
  $("#transformation-form").reset();
  $("#transformation-list").replaceChildren();
  $("#transformations-empty").hidden = true;
  $("#transformations-count").textContent = "";
  $("#transformation-error").textContent = "";
  $("#transformations-status").textContent = "";
}

function setUpTransformations() {
  $("#transformation-form").addEventListener("submit", saveTransformation);
  $("#transformation-form").addEventListener("reset", () => {
    $("#transformation-error").textContent = "";
  });
  $("#transformations-reload").addEventListener("click", () =>
    loadTransformations().catch((err) => ($("#transformations-status").textContent = err.message)),
  );
}

// ---- webhooks ------------------------------------------------------------------------------

// The account's endpoints (GET /api/webhooks). A secret, made when an endpoint is registered
// or rotated, is shown once in the secret box and kept nowhere else: dismissing the box or
// signing out forgets it. An endpoint's log (its recent deliveries) is asked again every two
// seconds while it is open and one of its deliveries is pending.
const DELIVERY_POLL_MS = 2000;
const DELIVERY_LIMIT = 20;
const hooks = { items: [], open: new Set(), pending: new Set(), timer: 0, seq: 0 };

function logOf(webhookId) {
  return document.getElementById(`deliveries-${webhookId}`);
}

async function loadWebhooks() {
  const seq = hooks.seq;
  const { items } = await api("/webhooks");
  if (seq !== hooks.seq) return;
  hooks.items = items;
  for (const id of [...hooks.open]) {
    if (!items.some((hook) => hook.id === id)) hooks.open.delete(id);
  }
  $("#webhooks-status").textContent = "";
  renderWebhooks();
  await Promise.all([...hooks.open].map(loadDeliveries));
}

function renderWebhooks() {
  $("#webhook-list").replaceChildren(...hooks.items.map(hookItem));
  $("#webhooks-empty").hidden = hooks.items.length > 0;
  $("#webhooks-count").textContent = `(${hooks.items.length})`;
}

function hookItem(hook) {
  const logId = `deliveries-${hook.id}`;
  const open = hooks.open.has(hook.id);
  const facts = [`Events: ${hook.events.join(", ")}`, `registered ${formatDate(hook.created_at)}`];
  const until = hook.previous_secret_valid_until;
  if (until && new Date(until) > new Date()) {
    facts.push(`the previous secret also signs until ${formatDate(until)}`);
  }
  const button = (text, label, extra = {}) => {
    const b = el("button", { type: "button", text, ...extra });
    b.setAttribute("aria-label", `${label} ${hook.url}`);
    return b;
  };
  const test = button("Send test", "Send a test event to");
  const rotate = button("Rotate secret", "Rotate the secret of");
  const toggle = button("Deliveries", "Recent deliveries of", {
    "aria-expanded": String(open),
    "aria-controls": logId,
  });
  const remove = button("Delete", "Delete the endpoint", { class: "danger ghost" });
  const error = el("p", { class: "error", role: "alert" });
  test.addEventListener("click", () => sendTest(hook, test, error));
  rotate.addEventListener("click", () => rotateSecret(hook, rotate, error));
  toggle.addEventListener("click", () => toggleDeliveries(hook, toggle));
  remove.addEventListener("click", () => deleteWebhook(hook, remove, error));
  const refresh = el("button", { type: "button", class: "ghost", text: "Refresh" });
  refresh.addEventListener("click", () => loadDeliveries(hook.id));
  const head = el(
    "tr",
    {},
    ...["Event", "State", "Attempts", "Last status", "Created", "Last attempt", "Next attempt", ""].map(
      (text) => el("th", { scope: "col", text }),
    ),
  );
  const log = el(
    "div",
    { class: "deliveries", id: logId, hidden: open ? null : "" },
    el("div", { class: "section-head" }, el("h4", { text: "Recent deliveries" }), refresh),
    el("p", { class: "muted small empty", text: "Loading…" }),
    el("div", { class: "table-wrap" }, el("table", { hidden: "" }, el("thead", {}, head), el("tbody"))),
    el("p", { class: "error", role: "alert" }),
  );
  return el(
    "li",
    { class: "hook", "data-id": hook.id },
    el(
      "div",
      { class: "hook-head" },
      el("code", { class: "hook-url", text: hook.url }),
      el("div", { class: "row" }, test, rotate, toggle, remove),
    ),
    el("p", { class: "muted small", text: facts.join(" · ") }),
    error,
    log,
  );
}

function deliveryRow(webhookId, d) {
  const when = (iso) => (iso ? formatDate(iso) : "—");
  const actions = el("td");
  if (d.state === "failed") {
    const retry = el("button", { type: "button", text: "Retry" });
    retry.setAttribute("aria-label", `Retry the ${d.event_type} delivery ${d.id}`);
    retry.addEventListener("click", () => retryDelivery(webhookId, d, retry));
    actions.append(retry);
  }
  return el(
    "tr",
    { "data-id": d.id, "data-state": d.state },
    el("td", {}, el("code", { text: d.event_type })),
    el("td", {}, el("span", { class: "badge", "data-state": d.state, text: d.state })),
    el("td", { text: String(d.attempts) }),
    el("td", { text: d.last_status == null ? "—" : String(d.last_status) }),
    el("td", { text: when(d.created_at) }),
    el("td", { text: when(d.last_attempt_at) }),
    el("td", { text: when(d.next_attempt_at) }),
    actions,
  );
}

async function loadDeliveries(webhookId) {
  const seq = hooks.seq;
  try {
    const { items } = await api(`/webhooks/${webhookId}/deliveries?limit=${DELIVERY_LIMIT}`);
    const log = logOf(webhookId);
    if (seq !== hooks.seq || !hooks.open.has(webhookId) || !log) return;
    $(".empty", log).textContent = items.length ? "" : "No deliveries yet.";
    $(".empty", log).hidden = items.length > 0;
    $("table", log).hidden = items.length === 0;
    $("tbody", log).replaceChildren(...items.map((d) => deliveryRow(webhookId, d)));
    $(".error", log).textContent = "";
    if (items.some((d) => d.state === "pending")) hooks.pending.add(webhookId);
    else hooks.pending.delete(webhookId);
  } catch (err) {
    if (seq !== hooks.seq) return;
    const log = logOf(webhookId);
    if (log) $(".error", log).textContent = err.message;
    hooks.pending.delete(webhookId);
  }
  scheduleDeliveries();
}

function scheduleDeliveries() {
  clearTimeout(hooks.timer);
  const due = () => [...hooks.open].filter((id) => hooks.pending.has(id));
  hooks.timer = due().length
    ? setTimeout(() => due().forEach((id) => loadDeliveries(id)), DELIVERY_POLL_MS)
    : 0;
}

function openDeliveries(webhookId) {
  hooks.open.add(webhookId);
  const log = logOf(webhookId);
  if (log) log.hidden = false;
  const toggle = document.querySelector(`[aria-controls="deliveries-${webhookId}"]`);
  if (toggle) toggle.setAttribute("aria-expanded", "true");
  return loadDeliveries(webhookId);
}

function toggleDeliveries(hook, toggle) {
  if (!hooks.open.has(hook.id)) {
    openDeliveries(hook.id);
    return;
  }
  hooks.open.delete(hook.id);
  hooks.pending.delete(hook.id);
  logOf(hook.id).hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  scheduleDeliveries();
}

async function registerWebhook(event) {
  event.preventDefault();
  const url = $("#webhook-url").value.trim();
  const boxes = [...document.querySelectorAll('#webhook-form [name="events"]')];
  const events = boxes.filter((box) => box.checked).map((box) => box.value);
  const error = $("#webhook-error");
  error.textContent = "";
  if (!events.length) {
    error.textContent = "Choose at least one event.";
    return;
  }
  const body = { url };
  if (events.length < boxes.length) body.events = events; // all of them: the API's default
  const form = $("#webhook-form");
  await submitting(form, $("#webhook-add"), error, async () => {
    const made = await api("/webhooks", { method: "POST", json: body });
    form.reset();
    say(`Registered the endpoint ${made.url}.`);
    showSecret("Signing secret", `For the new endpoint ${made.url}.`, made.secret, "");
    await loadWebhooks();
  });
}

async function sendTest(hook, button, error) {
  button.disabled = true;
  error.textContent = "";
  try {
    await api(`/webhooks/${hook.id}/test`, { method: "POST" });
    say(`A test event is on its way to ${hook.url}.`);
    await openDeliveries(hook.id);
  } catch (err) {
    error.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

async function rotateSecret(hook, button, error) {
  const yes = await confirmed(
    "Rotate this endpoint’s secret?",
    `A new secret signs what goes to ${hook.url} from now on; the current one keeps signing beside it for a while, so the receiver can switch.`,
    "Rotate",
  );
  if (!yes) {
    button.focus();
    return;
  }
  error.textContent = "";
  try {
    const rotated = await api(`/webhooks/${hook.id}/secret`, { method: "POST" });
    const until = rotated.previous_secret_valid_until;
    const overlap = until ? `The previous secret keeps signing beside it until ${formatDate(until)}.` : "";
    showSecret("New signing secret", `For ${hook.url}.`, rotated.secret, overlap);
    say(`Rotated the secret of ${hook.url}.`);
    await loadWebhooks();
  } catch (err) {
    error.textContent = err.message;
  }
}

async function deleteWebhook(hook, button, error) {
  const yes = await confirmed(
    "Delete this endpoint?",
    `${hook.url} will receive no more events, and its delivery log is removed.`,
    "Delete",
  );
  if (!yes) {
    button.focus();
    return;
  }
  error.textContent = "";
  try {
    await api(`/webhooks/${hook.id}`, { method: "DELETE" });
    hooks.open.delete(hook.id);
    hooks.pending.delete(hook.id);
    say(`Deleted the endpoint ${hook.url}.`);
    await loadWebhooks();
    $("#webhooks-title").focus();
  } catch (err) {
    error.textContent = err.message;
  }
}

async function retryDelivery(webhookId, delivery, button) {
  button.disabled = true;
  try {
    await api(`/webhooks/${webhookId}/deliveries/${delivery.id}/retry`, { method: "POST" });
    say(`The ${delivery.event_type} delivery is sent again.`);
    await loadDeliveries(webhookId);
  } catch (err) {
    button.disabled = false;
    const log = logOf(webhookId);
    if (log) $(".error", log).textContent = err.message;
  }
}

// Shown once: the value lives in this box only, until it is dismissed.
function showSecret(title, about, secret, overlap) {
  $("#webhook-secret-title").textContent = title;
  $("#webhook-secret-for").textContent = about;
  $("#webhook-secret-value").value = secret;
  $("#webhook-secret-overlap").textContent = overlap;
  $("#webhook-secret").hidden = false;
  $("#webhook-secret-title").focus();
}

function hideSecret() {
  $("#webhook-secret-value").value = "";
  $("#webhook-secret-for").textContent = "";
  $("#webhook-secret-overlap").textContent = "";
  $("#webhook-secret").hidden = true;
}

function forgetWebhooks() {
  clearTimeout(hooks.timer);
  Object.assign(hooks, { items: [], timer: 0, seq: hooks.seq + 1 });
  hooks.open.clear();
  hooks.pending.clear();
  hideSecret();
  $("#webhook-form").reset();
  $("#webhook-list").replaceChildren();
  $("#webhooks-empty").hidden = true;
  $("#webhooks-count").textContent = "";
  $("#webhook-error").textContent = "";
  $("#webhooks-status").textContent = "";
}

function setUpWebhooks() {
  $("#webhook-form").addEventListener("submit", registerWebhook);
  $("#webhooks-reload").addEventListener("click", () =>
    loadWebhooks().catch((err) => ($("#webhooks-status").textContent = err.message)),
  );
  $("#copy-secret").addEventListener("click", () => copy($("#webhook-secret-value").value, "Secret"));
  $("#webhook-secret-value").addEventListener("focus", (event) => event.target.select());
  $("#forget-secret").addEventListener("click", () => {
    hideSecret();
    say("The secret is no longer shown.");
    $("#webhooks-title").focus();
  });
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
  $("#webhooks-title").tabIndex = -1;
  $("#transformations-title").tabIndex = -1;
  setUpDropzone();
  setUpUrlForm();
  setUpSourceForm();
  setUpBuilder();
  setUpEager();
  setUpPublic();
  setUpTransformations();
  setUpWebhooks();
  signedOut("");
  document.body.dataset.ready = "true";
  loadGrammar();
}

start();
