// The stage's tiles in the DOM: one per camera or screen of whoever is on stage (stage.js decides
// who, in what order and in how many columns), each made once and refilled on every change, so
// playing videos are never re-laid. ``ui`` is the call UI: its strings, call, local media.

import { h, initials } from "./dom.js";
import { TILE_ASPECT, gridFor, mutedBadge } from "./stage.js";

export class Tiles {
  constructor(stage, ui, fit) {
    this.stage = stage;
    this.ui = ui;
    this.fit = fit; // tile keys shown "fit" (letterboxed) instead of "fill", kept across rejoins
    this.byKey = new Map();
    new ResizeObserver(() => this.layout()).observe(stage);
  }

  /** Tiles for ``shown`` (stage.js's order), made once each and refilled on every change. */
  update(shown) {
    const wanted = new Map();
    for (const p of shown) {
      wanted.set(`${p.participantId}:camera`, { p, source: "camera" });
      if (p.screenShare && !p.self) wanted.set(`${p.participantId}:screen`, { p, source: "screen" });
    }
    for (const [key, tile] of this.byKey) if (!wanted.has(key)) { tile.remove(); this.byKey.delete(key); }
    for (const [key, { p, source }] of wanted) {
      let tile = this.byKey.get(key);
      if (!tile) {
        tile = this.#tile(key, p, source);
        this.byKey.set(key, tile);
      }
      this.#fillTile(tile, key, p, source);
    }
    this.#arrange([...wanted.keys()].map((key) => this.byKey.get(key)));
    const sharing = [...wanted.values()].some((w) => w.source === "screen");
    this.stage.dataset.layout = sharing ? "screen" : this.ui.speakerLayout && this.ui.call.activeSpeaker ? "speaker" : "grid";
    this.layout();
  }

  /** Put the stage's tiles in this order, moving only those out of place (a moved video element
   * is laid out again; the others keep playing untouched). */
  #arrange(order) {
    let next = this.stage.firstElementChild;
    for (const tile of order) {
      if (tile === next) next = next.nextElementSibling;
      else this.stage.insertBefore(tile, next);
    }
  }

  /** Size the grid's tiles to the stage (called on every change and on every resize). */
  layout() {
    const { clientWidth, clientHeight, childElementCount } = this.stage;
    const gap = parseFloat(getComputedStyle(this.stage).columnGap) || 0;
    // An element mounted without a height leaves the stage none: plan for a 16:9 stage then.
    const height = clientHeight || clientWidth / TILE_ASPECT;
    const { columns, tileWidth } = gridFor(childElementCount || 1, clientWidth, height, gap);
    this.stage.style.setProperty("--columns", String(columns));
    this.stage.style.setProperty("--tile-width", `${Math.floor(tileWidth)}px`);
  }

  #tile(key, p, source) {
    const video = h("video", { autoplay: true, playsInline: true, muted: true });
    const fitButton = h("button", { type: "button", class: "fit-toggle", onclick: () => { this.fit.has(key) ? this.fit.delete(key) : this.fit.add(key); this.ui.redraw(); } });
    return h("figure", { class: `tile ${source}`, "data-participant": p.participantId, "data-source": source },
      video, h("div", { class: "avatar", "aria-hidden": "true" }), h("figcaption", {}), fitButton);
  }

  #fillTile(tile, key, p, source) {
    const [video, avatar, caption, fitButton] = tile.children;
    const stream = p.self ? this.ui.local.camera : this.ui.call.remoteVideo.get(p.participantId)?.[source];
    const showing = Boolean(stream) && (source === "screen" || p.camera);
    if (video.srcObject !== (showing ? stream : null)) video.srcObject = showing ? stream : null;
    video.hidden = !showing;
    video.classList.toggle("mirrored", Boolean(p.self));
    video.classList.toggle("fit", this.fit.has(key) || source === "screen");
    avatar.hidden = showing;
    avatar.textContent = p.phoneNumber ? "☎" : initials(p.displayName);
    const name = p.self ? this.ui.t("youName", { name: p.displayName }) : p.displayName;
    const label = source === "screen" ? this.ui.t("screenOf", { name: p.displayName }) : name;
    const badges = [
      h("span", { class: "role" }, this.ui.kind(p)),
      mutedBadge(p) ? h("span", { class: "badge muted" }, this.ui.t("muted")) : null,
      p.state === "OnHold" ? h("span", { class: "badge" }, this.ui.t("onHold")) : null,
      !["Connected", "OnHold"].includes(p.state) ? h("span", { class: "badge" }, this.ui.t(`states.${p.state}`)) : null,
      this.ui.call.activeSpeaker === p.participantId ? h("span", { class: "badge speaking" }, this.ui.t("speaking")) : null,
    ];
    caption.replaceChildren(h("span", { class: "name" }, label), ...badges.filter(Boolean));
    tile.classList.toggle("active", this.ui.call.activeSpeaker === p.participantId);
    fitButton.hidden = !showing;
    fitButton.textContent = this.ui.t(this.fit.has(key) ? "fillName" : "fitName", { name: p.displayName });
  }
}
