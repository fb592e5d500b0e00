// Small DOM and text helpers the call UI is drawn with (no framework).

/** An element: h("button", { class: "x", onclick: f, "aria-label": "…" }, "text", child…). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key in element && !key.includes("-")) element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  element.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

export function fill(template, values = {}) {
  return String(template).replace(/\{(\w+)\}/g, (_, key) => values[key] ?? "");
}

export async function loadStrings(locale) {
  const language = String(locale || "en").toLowerCase().split("-")[0];
  if (/^[a-z]{2,3}$/.test(language) && language !== "en") {
    try {
      return (await import(`./locales/${language}.js`)).default;
    } catch {
      // no such locale: English
    }
  }
  return (await import("./locales/en.js")).default;
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/);
  return parts.slice(0, 2).map((p) => p[0] || "").join("").toUpperCase() || "?";
}

export const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** Redraw a container's buttons without taking the keyboard focus away: the button with the
 * same data-key as the focused one gets it back (a call redraws on every speaker change). */
export function keepingFocus(container, redraw) {
  const focused = container.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  redraw();
  if (focused) container.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}
