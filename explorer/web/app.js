// The explorer page: plain JavaScript around the two calls the wasm
// engine exports (check and explain), built by wasm-bindgen --target web.
import init, { check, explain } from "./modelgate_explorer.js";

const $ = (id) => document.getElementById(id);

function refreshProviders(status) {
  const select = $("provider");
  const chosen = select.value;
  select.replaceChildren(...(status.providers || []).map((name) => new Option(name, name)));
  if ((status.providers || []).includes(chosen)) select.value = chosen;
}

function runCheck() {
  const status = JSON.parse(check($("config").value));
  const out = $("config-status");
  out.className = status.ok ? "good" : "bad";
  out.textContent = status.ok ? `ok: ${status.summary}` : status.message;
  out.dataset.path = status.ok ? "" : status.path;
  if (status.ok) refreshProviders(status);
  return status;
}

function optionalJson(id) {
  const text = $(id).value.trim();
  return text ? JSON.parse(text) : undefined;
}

// What an MCP server is asked instead of a model.
const MCP_FIELDS = ["tool", "resource", "prompt", "method"];

function runExplain() {
  const q = { spiffe_id: $("spiffe-id").value.trim(), provider: $("provider").value, svid: $("svid").value };
  const mcp = MCP_FIELDS.some((id) => $(id).value.trim()) || $("arguments").value.trim();
  const fields = [...(mcp ? MCP_FIELDS : ["model"]), "endpoint", "peer"];
  for (const id of fields) {
    if ($(id).value.trim()) q[id] = $(id).value.trim();
  }
  if ($("time").value) q.time = Math.floor(Date.parse($("time").value + "Z") / 1000);
  try {
    const claims = optionalJson("claims"), metadata = optionalJson("metadata");
    const args = optionalJson("arguments");
    if (claims) q.claims = claims;
    if (metadata) q.metadata = metadata;
    if (args !== undefined) q.arguments = args;
  } catch (e) {
    show({ error: `claims/metadata/arguments: ${e.message}` });
    return;
  }
  show(JSON.parse(explain($("config").value, JSON.stringify(q), Date.now() / 1000)));
}

function show(a) {
  $("decision").className = a.decision || "deny";
  $("decision").textContent = a.error ? "error" : a.decision;
  $("reason").textContent = a.error ? "" : `(${a.reason}${a.detail ? ": " + a.detail : ""})`;
  $("message").textContent = a.error || a.message;
  $("rule").textContent = a.rule ? `rule: ${a.rule}` : "";
  const rows = (a.conditions || []).map((c) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td></td><td></td><td></td>`;
    [c.rule, c.condition, c.ok ? "holds" : "does not hold"].forEach((t, i) => (tr.children[i].textContent = t));
    return tr;
  });
  $("conditions").replaceChildren(...rows);
}

await init();
const demo = await fetch("demo-policy.json").then((r) => (r.ok ? r.text() : ""));
$("config").value = demo;
runCheck();
$("check").addEventListener("click", runCheck);
$("explain").addEventListener("click", () => { runCheck(); runExplain(); });
document.body.dataset.ready = "true";
