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
// The descriptions in the OpenAPI document are Markdown (CommonMark's small subset the platform writes:
// paragraphs, "- " and "1. " lists, `code`, **bold**, [links](url)). This renders that subset by building DOM
// nodes and putting every piece of text in a text node: HTML in a description is shown as text, never parsed,
// and a link is made only to http(s) addresses (relative ones resolve against this site).
const INLINE = /`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
const LIST_ITEM = /^\s*(?:([-*])|(\d+)[.)])\s+/;

function safeHref(url) {
  try {
    const parsed = new URL(url, window.location.href);
    return ["http:", "https:"].includes(parsed.protocol) ? parsed.href : null;
  } catch (e) {
    return null;
  }
}
function inline(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const [whole, code, bold, label, url] = match;
    if (code !== undefined) nodes.push(el("code", {textContent: code}));
    else if (bold !== undefined) nodes.push(el("strong", {}, ...inline(bold)));
    else {
      const href = safeHref(url);
      nodes.push(href ? el("a", {href, textContent: label}) : document.createTextNode(whole));
    }
    last = match.index + whole.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}
function markdown(text, className = "desc") {
  const root = el("div", {className});
  let paragraph = [], list = null;
  const endParagraph = () => {
    if (paragraph.length) root.append(el("p", {}, ...inline(paragraph.join(" "))));
    paragraph = [];
  };
  for (const line of String(text || "").split("\n")) {
    const item = line.match(LIST_ITEM);
    if (!line.trim()) { endParagraph(); list = null; continue; }
    if (item) {
      endParagraph();
      const tag = item[1] ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== tag) { list = el(tag); root.append(list); }
      list.append(el("li", {}, ...inline(line.slice(item[0].length))));
    } else if (list && /^\s+/.test(line)) {
      list.lastChild.append(" ", ...inline(line.trim()));  // a list item's continuation line
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  endParagraph();
  return root;
}
// For places that take text only (placeholders, the responses' summary): the Markdown marks dropped.
function plain(text) {
  return String(text || "").replace(INLINE, (whole, code, bold, label) => code ?? bold ?? label ?? whole);
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
    inputs[p.name] = el("input", {type: "text", placeholder: plain(p.description) || p.name});
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
    op.description ? markdown(op.description) : null,
    ...fields,
    typeSelect ? el("label", {}, "type ", typeSelect) : null,
    body,
    send,
    el("details", {}, el("summary", {textContent: "Responses"}),
       el("pre", {textContent: Object.entries(op.responses).map(([code, r]) =>
         `${code}  ${plain(resolve(doc, r).description)}`).join("\n")})),
    out);
}

fetch(schemaUrl).then(r => r.json()).then(doc => {
  document.getElementById("intro").replaceChildren(...markdown(doc.info.description).childNodes);
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
                 markdown(schema.description),
                 el("pre", {textContent: JSON.stringify(schema.properties.payload, null, 2)}));
  }
}).catch(error => { document.getElementById("ops").textContent = "could not load the schema: " + error; });
