// The API docs page's script: a static file, so the Content-Security-Policy needs no 'unsafe-inline'.
"use strict";
const schemaUrl = JSON.parse(document.getElementById("schema-url").textContent);
const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
const SHOWN_HEADERS = ["location", "x-request-id", "idempotent-replayed", "retry-after", "www-authenticate"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs);
  children.filter(c => c !== null && c !== undefined).forEach(c => node.append(c));
  return node;
}
function resolve(doc, item) {
  if (!item || !item.$ref) return item;
  return item.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node[key], doc);
}
function examplePayload(schema) {
  const payload = {};
  for (const [name, prop] of Object.entries((schema && schema.properties) || {})) {
    if ("default" in prop) payload[name] = prop.default;
  }
  return payload;
}

function operation(doc, path, method, op) {
  const params = (op.parameters || []).map(p => resolve(doc, p));
  const inputs = {};
  const fields = params.filter(p => p.in === "path" || p.in === "query" || p.in === "header").map(p => {
    inputs[p.name] = el("input", {type: "text", placeholder: p.description || p.name});
    return el("label", {}, `${p.name} (${p.in}${p.required ? ", required" : ""})`, inputs[p.name]);
  });
  let body = null, typeSelect = null;
  const bodySchema = op.requestBody && resolve(doc, op.requestBody.content["application/json"].schema);
  if (bodySchema && bodySchema.oneOf) {
    const variants = bodySchema.oneOf.map(v => resolve(doc, v));
    body = el("textarea");
    typeSelect = el("select", {onchange: () => {
      const variant = variants.find(v => v.title === typeSelect.value);
      body.value = JSON.stringify({type: variant.title, payload: examplePayload(variant.properties.payload)}, null, 2);
    }}, ...variants.map(v => el("option", {value: v.title, textContent: v.title})));
    if (variants.length) typeSelect.onchange();
  }
  const out = el("pre", {textContent: "(no request sent yet)"});
  const send = el("button", {textContent: "Send", onclick: async () => {
    let url = doc.servers[0].url + path;
    const query = new URLSearchParams();
    const headers = {"Accept": "application/json"};
    for (const p of params) {
      const value = inputs[p.name] && inputs[p.name].value.trim();
      if (!value) continue;
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(value));
      else if (p.in === "query") query.set(p.name, value);
      else headers[p.name] = value;
    }
    if (query.toString()) url += "?" + query;
    const token = document.getElementById("token").value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
    if (method !== "get") { headers["X-CSRFToken"] = csrf; }
    if (body) headers["Content-Type"] = "application/json";
    out.textContent = "…";
    try {
      const response = await fetch(url, {method: method.toUpperCase(), headers, credentials: "same-origin",
                                         body: body ? body.value : undefined});
      const shown = SHOWN_HEADERS.filter(h => response.headers.has(h)).map(h => `${h}: ${response.headers.get(h)}`);
      const text = await response.text();
      let pretty = text;
      try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: show as is */ }
      out.textContent = `${response.status} ${response.statusText}\n${shown.join("\n")}\n\n${pretty}`;
    } catch (error) {
      out.textContent = "request failed: " + error;
    }
  }});
  return el("div", {className: "op"},
    el("div", {}, el("span", {className: "method " + method, textContent: method.toUpperCase()}),
       el("code", {textContent: path}), " — " + (op.summary || "")),
    op.description ? el("div", {className: "desc", textContent: op.description}) : null,
    ...fields,
    typeSelect ? el("label", {}, "type ", typeSelect) : null,
    body,
    send,
    el("details", {}, el("summary", {textContent: "Responses"}),
       el("pre", {textContent: Object.entries(op.responses).map(([code, r]) =>
         `${code}  ${resolve(doc, r).description}`).join("\n")})),
    out);
}

fetch(schemaUrl).then(r => r.json()).then(doc => {
  document.getElementById("intro").textContent = doc.info.description;
  const ops = document.getElementById("ops");
  ops.textContent = "";
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      if (path === "/docs") continue;
      ops.append(operation(doc, path, method, op));
    }
  }
  const types = document.getElementById("types");
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    if (!name.startsWith("Enqueue_")) continue;
    types.append(el("h3", {}, el("code", {textContent: schema.title})),
                 el("p", {textContent: schema.description}),
                 el("pre", {textContent: JSON.stringify(schema.properties.payload, null, 2)}));
  }
}).catch(error => { document.getElementById("ops").textContent = "could not load the schema: " + error; });
