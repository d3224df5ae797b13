/* Small DOM helpers shared by the cards: elements, table bodies, a card's error line, arrows and bars. */

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function fillBody(table, rows, emptyText) {
  const body = $(table).tBodies[0];
  const columns = $(table).tHead.rows[0].cells.length;
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, emptyText))]));
}

export function showError(id, error) {
  const node = $(id);
  if (!node) return;
  if (!error) {
    node.hidden = true;
    node.textContent = "";
    return;
  }
  node.hidden = false;
  node.textContent = error.status === 503 ? `The database is unavailable (${error.message}); retry shortly.` : `Could not load: ${error.message}`;
}

/** `↑ 13.1%` / `↓ 71.7%`; `new` where nothing was spent before. The arrow is spelled out for screen readers. */
export function change(changePct, spend) {
  if (changePct == null) return el("span", { class: "muted" }, spend ? "new" : "—");
  const dir = changePct > 0 ? "up" : changePct < 0 ? "down" : "flat";
  const arrow = { up: "↑", down: "↓", flat: "→" }[dir];
  return el("span", { class: `change ${dir}` }, el("span", { "aria-hidden": "true" }, arrow), el("span", { class: "vh" }, dir), ` ${Math.abs(changePct).toFixed(1)}%`);
}

export function bar(percent, status) {
  const fill = el("span", { class: `fill ${status || ""}` });
  fill.style.width = `${Math.max(0, Math.min(100, percent || 0))}%`;
  return el("span", { class: "bar", "aria-hidden": "true" }, fill);
}
