// The exports page (templates/exports/page.html): request, watch and download exports through /api/exports.
// A static file, not an inline script: the Content-Security-Policy allows scripts from 'self' only.
(function () {
  "use strict";
  const API = JSON.parse(document.getElementById("api-url").textContent);
  const sources = JSON.parse(document.getElementById("sources-data").textContent);
  const $ = (id) => document.getElementById(id);
  const csrf = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
  let watching = null;
  const LABELS = { queued: "Queued", running: "Running", succeeded: "Ready", failed: "Failed", cancelled: "Cancelled",
                   expired: "Expired" };

  function field(name, spec) {
    const wrap = document.createElement("div");
    const id = "filter-" + name;
    const title = name.replace(/_/g, " ");
    const hint = spec.description ? ' <span class="hint">(' + spec.description.replace(/[<>&]/g, "") + ")</span>" : "";
    let input;
    if (spec.type === "boolean") {
      wrap.innerHTML = '<label class="check"><input type="checkbox" id="' + id + '"> ' + title + hint + "</label>";
      input = wrap.querySelector("input");
      input.checked = !!spec.default;
    } else {
      wrap.innerHTML = '<label for="' + id + '">' + title + hint + "</label>";
      if (spec.enum) {
        input = document.createElement("select");
        if (spec.default === undefined) input.add(new Option("any", ""));
        spec.enum.forEach((value) => input.add(new Option(value, value)));
        if (spec.default !== undefined) input.value = spec.default;
      } else {
        input = document.createElement("input");
        const numeric = spec.type === "integer" || spec.type === "number";
        input.type = spec.format === "date-time" ? "datetime-local" : numeric ? "number" : "text";
        if (numeric && spec.default !== undefined) input.placeholder = spec.default;
      }
      input.id = id;
      wrap.appendChild(input);
    }
    input.dataset.filter = name;
    input.dataset.kind = spec.format || spec.type;
    return wrap;
  }

  function showFilters() {
    const source = sources.find((s) => s.name === $("source").value);
    const box = $("filters");
    box.innerHTML = "";
    const props = (source && source.filters.properties) || {};
    Object.keys(props).forEach((name) => box.appendChild(field(name, props[name])));
    if (!box.children.length) box.innerHTML = '<p class="muted" style="margin:0">No filters for this source.</p>';
  }

  function showOptions() {
    const format = $("format").value;
    $("bom-option").hidden = format !== "csv";
    $("gzip-option").hidden = format === "xlsx";
  }

  function filters() {
    const result = {};
    document.querySelectorAll("[data-filter]").forEach((input) => {
      if (input.dataset.kind === "boolean") { if (input.checked) result[input.dataset.filter] = true; return; }
      if (!input.value) return;
      // datetime-local has no zone: it is the browser's local time, sent with the browser's offset.
      const kind = input.dataset.kind;
      result[input.dataset.filter] = kind === "date-time" ? new Date(input.value).toISOString()
        : kind === "integer" || kind === "number" ? Number(input.value) : input.value;
    });
    return result;
  }

  function size(bytes) {
    if (!bytes) return "–";
    const units = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return bytes.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function text(tag, value, label) {
    const cell = document.createElement(tag);
    cell.textContent = value;
    if (label) cell.dataset.label = label;
    return cell;
  }

  // What a person may be shown as an export's number: its place among their own exports (1 = their first),
  // never the global id, which would tell them how many exports other users made. The list is newest first
  // and counts only the caller's exports, so on its first page the i-th one is number count - i.
  function numbered(list) {
    return list.results.map((e, i) => Object.assign({}, e, { number: list.count - i }));
  }

  // The state as both the panel and the table word it, so the two always read the same.
  function stateText(e) {
    return LABELS[e.status] + (e.status === "running" ? " " + e.progress.percent + "%" : "");
  }

  // The source's title and the format, as the form names them ("Products, CSV.gz").
  function what(e) {
    const title = (sources.find((s) => s.name === e.source) || {}).title || e.source;
    return title + ", " + e.format.toUpperCase() + (e.gzip ? ".gz" : "");
  }

  function renderRecent(exports) {
    const body = $("recent");
    body.innerHTML = "";
    if (!exports.length) { body.innerHTML = '<tr><td colspan="7" class="muted">No exports yet.</td></tr>'; return; }
    exports.forEach((e) => {
      const row = document.createElement("tr");
      row.appendChild(text("td", e.number, "#"));
      row.appendChild(text("td", what(e), "What"));
      const state = text("td", "", "State");
      const badge = text("span", stateText(e));
      badge.className = "state " + e.status;
      state.appendChild(badge);
      row.appendChild(state);
      row.appendChild(text("td", e.status === "succeeded" ? e.row_count.toLocaleString() : "–", "Rows"));
      row.appendChild(text("td", size(e.byte_size), "Size"));
      row.appendChild(text("td", new Date(e.created_at).toLocaleString(), "Created"));
      const action = text("td", "", "");
      if (e.download_url) {
        const link = text("a", "Download");
        link.href = e.download_url;
        action.appendChild(link);
      } else if (e.error) {
        action.appendChild(text("span", e.error.message)).className = "error";
      }
      row.appendChild(action);
      body.appendChild(row);
    });
  }

  async function api(url, options) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin", headers: {
      "Content-Type": "application/json", "X-CSRFToken": csrf() } }, options || {}));
    const body = await response.json().catch(() => ({}));
    if (!response.ok && response.status !== 202) {
      const error = (body && body.error) || { message: "the server answered " + response.status };
      throw new Error(error.message);
    }
    return body;
  }

  function progressDetail(e) {
    const p = e.progress;
    if (e.status === "queued") return "Waiting for a worker to start it…";
    if (e.status === "running" && !p.rows_estimated) return p.rows.toLocaleString() + " rows so far (counting the total…)";
    if (e.status === "running") return p.rows.toLocaleString() + " of about " + p.rows_estimated.toLocaleString() + " rows";
    if (e.status === "succeeded") return e.row_count.toLocaleString() + " rows · " + size(e.byte_size);
    return "";
  }

  function showCurrent(e) {
    $("current").hidden = false;
    $("current-label").textContent = "Export " + (e.number ? "#" + e.number + " " : "") + "(" + what(e) + "): " +
      stateText(e);
    $("current-bar").value = e.status === "succeeded" ? 100 : e.progress.percent;
    $("current-detail").textContent = progressDetail(e);
    // An error on a queued export is an attempt that failed and will be retried.
    $("current-error").hidden = !e.error || !["failed", "queued"].includes(e.status);
    $("current-error").textContent = !e.error ? "" : (e.status === "failed" ? "Failed: " : "Retrying after: ") + e.error.message;
    $("current-download").hidden = !e.download_url;
    if (e.download_url) $("current-download").href = e.download_url;
    $("current-cancel").hidden = !(e.status === "queued" || e.status === "running");
  }

  // One snapshot for the table and the panel: the list is read once, and the watched export is taken from it
  // (read on its own only when it is no longer among the ten newest), then both are drawn together.
  async function refresh() {
    const recent = numbered(await api(API + "?page_size=10"));
    let current = null;
    if (watching) current = recent.find((e) => e.id === watching.id) || await api(watching.url);
    if (current) showCurrent(current);
    renderRecent(recent);
    return current;
  }

  async function watch(e) {
    const target = { id: e.id, url: e.url };
    watching = target;
    while (watching === target) {
      let current = null;
      try { current = await refresh(); } catch (error) { $("current-error").hidden = false; $("current-error").textContent = error.message; }
      if (current && !["queued", "running"].includes(current.status)) { watching = null; $("submit").disabled = false; return; }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  $("export-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("form-error").hidden = true;
    $("submit").disabled = true;
    const format = $("format").value;
    const body = { source: $("source").value, format: format, filters: filters(),
                   gzip: format !== "xlsx" && $("gzip").checked, bom: format === "csv" && $("bom").checked };
    try {
      const e = await api(API, { method: "POST", body: JSON.stringify(body) });
      watch(e);
    } catch (error) {
      $("form-error").textContent = "Could not start the export: " + error.message;
      $("form-error").hidden = false;
      $("submit").disabled = false;
    }
  });

  $("current-cancel").addEventListener("click", async () => {
    if (!watching) return;
    try { await api(watching.url, { method: "DELETE" }); } catch (error) { $("form-error").textContent = error.message; $("form-error").hidden = false; }
  });

  $("source").addEventListener("change", showFilters);
  $("format").addEventListener("change", showOptions);
  showFilters();
  showOptions();
  refresh().catch(() => { /* shown by the next poll */ });
})();
