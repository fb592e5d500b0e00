// The vrooms call UI: a complete room call (pre-join screen, video grid, role-aware controls) in
// plain DOM on top of vrooms.js. No framework and no build step: an app mounts it in two lines,
//
//   import { VroomsCall } from "https://vrooms.example.org/web/vrooms-call.js";
//   VroomsCall.mount(document.getElementById("call"), { endpoint, token, roomId, displayName });
//
// or writes <vrooms-call endpoint=… token=… room-id=…></vrooms-call>. Every control is a <button>
// with a fixed accessible name (see locales/en.js), shown only while the role allows it: the server
// enforces the role table; the UI follows the capabilities the server announces.

import { LocalDevices } from "./devices.js";
import { fill, h, keepingFocus, loadStrings, sleep } from "./dom.js";
import { onStage, pageOf, visibleVideo } from "./stage.js";
import { CaptionLines, CaptionsPanel, ParticipantPanel } from "./panels.js";
import { Tiles } from "./tiles.js";
import { VroomsClient } from "./vrooms.js";

const RECONNECT_DELAYS_S = [1, 2, 4, 8, 15];
// Each step is drawn between half and one and a half of its value (jitter): after a server
// restart a whole class would otherwise come back in the same instant, and again at each step.
const reconnectDelay = (attempt) => RECONNECT_DELAYS_S[Math.min(attempt, RECONNECT_DELAYS_S.length - 1)] * (0.5 + Math.random());
// Refusals that no retry can cure: the UI says why and stops.
const FINAL_REFUSALS = new Set([
  "TokenInvalid", "TokenExpired", "TokenRevoked", "IdentityDeleted", "TokenScopeMissing",
  "RoomNotFound", "NotOnRoster", "RoomNotYetOpen", "RoomExpired",
]);
const TOAST_MS = 6000;

export class VroomsCall {
  static mount(element, options) {
    const ui = new VroomsCall(element, options);
    ui.ready = ui.start();
    return ui;
  }

  constructor(root, { endpoint, token, roomId, displayName = "", locale = navigator.language } = {}) {
    Object.assign(this, { root, endpoint, token, roomId, displayName, locale });
    this.client = null;
    this.call = null;
    this.room = null; // checkRoom's answer: role, capabilities, validity window
    this.media = new LocalDevices(this); // devices.js: the streams, choices, pickers, meter
    this.local = this.media.local;
    this.wanted = this.media.wanted;
    this.devices = this.media.devices;
    this.tiles = null; // the stage's (tiles.js), made with the call's screen
    this.fit = new Set(); // tile keys shown "fit" (letterboxed) instead of "fill"
    this.names = new Map(); // participant and user ids -> display name, kept for when they have left
    this.leaving = false;
    this.deviceWork = Promise.resolve(); // the pre-join's device (re)openings, in turn
    this.speakerLayout = false; // the active speaker large, the others in a strip
    this.page = 0; // of the grid (stage.js pageOf)
    this.sentVisible = "null"; // the last visibleVideo sent, as JSON
  }

  // -- strings --------------------------------------------------------------------------------

  t(key, values) {
    const value = key.split(".").reduce((table, part) => (table ? table[part] : undefined), this.strings);
    return fill(value ?? key, values);
  }

  reason(table, code, values = {}) {
    const known = this.strings[table][code];
    return fill(known ?? this.strings[table].default ?? code, { code, reason: code, ...values });
  }

  role(role) {
    return this.strings.roles[role] || role;
  }

  time(iso) {
    return new Intl.DateTimeFormat(this.locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
  }

  // -- start: connect, check the room, pre-join ----------------------------------------------

  async start() {
    this.strings = await loadStrings(this.locale);
    this.root.classList.add("vrooms-call");
    this.root.lang = this.locale;
    this.#screen(h("p", { class: "status", role: "status" }, this.t("connecting")));
    try {
      await this.#connect();
      this.room = await this.client.checkRoom(this.roomId);
    } catch (error) {
      this.#refused(error);
      return;
    }
    await this.#prejoin();
  }

  /** Through the page's endpoint, or (a cluster) the first of the nodes the server named that answers. */
  async #connect() {
    const endpoints = this.client ? this.client.endpoints : [this.endpoint];
    let failure = null;
    for (const endpoint of endpoints) {
      try {
        const client = await VroomsClient.connect(endpoint, this.token);
        client.endpoints = [...client.endpoints, ...endpoints.filter((e) => !client.endpoints.includes(e))];
        this.client = client;
        return;
      } catch (error) {
        failure = error;
        if (FINAL_REFUSALS.has(error.code)) break;
      }
    }
    throw failure;
  }

  may(capability) {
    const capabilities = this.call ? this.call.capabilities : this.room ? this.room.capabilities : [];
    return capabilities.includes(capability);
  }

  #screen(...content) {
    this.media.stopMeter();
    this.root.replaceChildren(...content);
  }

  #refused(error) {
    const code = error.code || "NotConnected";
    const time = error.details?.validFrom || error.details?.validUntil;
    const sentence = this.reason("refusals", code, { time: time ? this.time(time) : "" });
    this.#screen(h("section", { class: "message", role: "alert" }, h("h2", {}, this.t("title")), h("p", {}, sentence)));
  }

  // -- pre-join --------------------------------------------------------------------------------

  async #prejoin() {
    this.preview = h("video", { class: "preview mirrored", autoplay: true, muted: true, playsInline: true });
    this.previewOff = h("p", { class: "preview-off" }, this.t("cameraIsOff"));
    this.notices = h("div", { class: "notices", "aria-live": "polite" });
    this.pickers = h("div", { class: "pickers" });
    this.toggles = h("div", { class: "toggles" });
    this.nameInput = h("input", { id: "vrooms-name", value: this.displayName, autocomplete: "name" });
    // Enabled once the devices are open: joining takes them as they are then.
    const join = h("button", { class: "primary", type: "submit", disabled: true }, this.t("joinCall"));
    this.joinButton = join;
    const form = h(
      "form",
      { class: "prejoin", onsubmit: (event) => { event.preventDefault(); join.disabled = true; this.#join().finally(() => { join.disabled = false; }); } },
      h("h2", {}, this.t("title")),
      h("p", {}, this.t("joinAs", { role: this.role(this.room.role) })),
      this.may("sendVideo") ? h("div", { class: "preview-box", "aria-label": this.t("preview"), role: "img" }, this.preview, this.previewOff) : null,
      this.notices,
      h("label", { for: "vrooms-name" }, this.t("yourName")),
      this.nameInput,
      this.pickers,
      this.toggles,
      join,
    );
    this.#screen(form);
    await this.#openDevices();
  }

  /** Open what the role may use and the user wants, ``release`` closed first; one run at a time:
   * a click during a run waits for it (two runs at once would each open a device). */
  #openDevices(release = null) {
    const run = this.deviceWork.then(() => this.#openDevicesNow(release));
    this.deviceWork = run.catch(() => {});
    return run;
  }

  async #openDevicesNow(release) {
    if (release) this.media.stop(release);
    this.joinButton.disabled = true;
    this.notices.replaceChildren();
    // Each device is opened once (a picker change closes its own first); a muted microphone is
    // open but sends nothing, so it can be unmuted in the call.
    if (this.may("sendAudio") && !this.local.audio) this.local.audio = await this.media.capture("audio", this.devices.mic);
    this.#sendMic(this.wanted.mic);
    if (this.may("sendVideo") && this.wanted.camera && !this.local.camera) {
      this.local.camera = await this.media.capture("video", this.devices.camera);
    }
    if (this.preview) this.preview.srcObject = this.local.camera;
    if (this.previewOff) this.previewOff.hidden = Boolean(this.local.camera);
    await this.#renderPickers();
    this.#renderToggles();
    this.media.startMeter(this.meterBar);
    this.joinButton.disabled = false;
  }

  async #renderPickers() {
    const reopen = (which) => () => this.#openDevices(which);
    this.pickers.replaceChildren(
      ...(await this.media.selects({ camera: reopen("camera"), mic: reopen("audio"), speaker: () => {} })),
    );
    if (this.local.audio) {
      this.meterBar = h("meter", { min: 0, max: 1, value: 0, "aria-label": this.t("micLevel") });
      this.pickers.append(h("div", { class: "picker" }, h("span", {}, this.t("micLevel")), this.meterBar));
    }
  }

  /** Mid-call switches: the new device is opened first and its track replaces the one being sent
   * (same connection, same feed: the others' pictures and sound never stop), then the old one is
   * released. A device that cannot be opened leaves the current one in use. */
  async #updateDevices() {
    const switchTo = (which, kind, replace) => async (deviceId) => {
      if (!this.local[which]) return; // off: the new device is used when it is turned on
      const stream = await this.media.capture(kind, deviceId);
      if (!stream) return;
      if (which === "audio") stream.getAudioTracks()[0].enabled = this.wanted.mic;
      await replace(stream);
      this.media.stop(which);
      this.local[which] = stream;
      this.#update();
    };
    const switchMic = switchTo("audio", "audio", (s) => this.call.replaceAudio(s.getAudioTracks()[0]));
    const switchCamera = switchTo("camera", "video", (s) => this.call.replaceVideo(s));
    const speaker = (id) => this.audio.setSinkId?.(id).catch((e) => this.failed(e));
    const selects = await this.media.selects({ mic: switchMic, camera: switchCamera, speaker });
    this.devicesPanel.replaceChildren(h("h2", {}, this.t("settings")), ...selects);
  }

  /** A toggle for each device the role may use that is open, and "Turn camera on" also when the
   * camera failed to open (it asks again: a camera another application held may be free now). */
  #renderToggles() {
    const buttons = [];
    if (this.may("sendAudio") && this.local.audio) {
      buttons.push(h("button", { type: "button", "aria-pressed": String(!this.wanted.mic), onclick: () => this.#toggleWanted("mic") },
        this.t(this.wanted.mic ? "muteMic" : "unmuteMic")));
    }
    if (this.may("sendVideo")) {
      const live = Boolean(this.local.camera);
      buttons.push(h("button", { type: "button", "aria-pressed": String(!live), onclick: () => this.#toggleWanted("camera") },
        this.t(live ? "cameraOff" : "cameraOn")));
    }
    this.toggles.replaceChildren(...buttons);
  }

  async #toggleWanted(key) {
    if (key === "mic") {
      this.#sendMic(!this.wanted.mic);
      this.#renderToggles();
      this.toggles.firstChild?.focus();
      return;
    }
    this.wanted.camera = !this.local.camera; // on if it is not live, whatever was wanted before
    await this.#openDevices(this.wanted.camera ? null : "camera");
    this.toggles.lastChild?.focus();
  }

  // -- joining -----------------------------------------------------------------------------------

  async #join() {
    this.displayName = this.nameInput ? this.nameInput.value.trim() : this.displayName;
    try {
      await this.#enter();
    } catch (error) {
      if (!this.call || this.call.state !== "Connected") this.#refused(error);
      return;
    }
  }

  /** Join with the devices opened before (also when rejoining after a lost connection). */
  async #enter() {
    const audio = this.may("sendAudio") ? this.local.audio : null;
    // The page comes back by itself (#lost), with its devices: the library's own way back is off.
    this.call = await this.client.join(this.roomId, { audio, displayName: this.displayName, comeBack: false });
    this.#listen(this.call);
    this.#renderCall();
    if (audio && !this.wanted.mic) await this.call.mute();
    if (this.local.camera && this.may("sendVideo")) {
      // In the call either way: a camera the media server refuses now can be turned on again.
      await this.call.startVideo(this.local.camera).catch((error) => this.failed(error));
    }
    this.#update();
  }

  #listen(call) {
    const on = (type, handler) => call.addEventListener(type, (event) => handler(event.detail));
    on("participantJoined", (m) => { this.#announce(this.t("joined", { name: m.participant.displayName })); this.#update(); });
    on("participantUpdated", () => this.#update());
    on("participantLeft", (m) => this.#participantLeft(m));
    on("activeSpeaker", () => this.#update());
    on("remoteVideo", () => this.#update());
    on("stateChanged", () => this.#update());
    on("captions", () => this.#update());
    on("captionsReceived", (m) => this.captionLines.received(m));
    on("inviteDeclined", (m) => this.toast(this.t("declined", { name: this.names.get(m.userId) || m.userId })));
    on("mutedByOthers", () => { this.#sendMic(false); this.#announce(this.t("youWereMuted")); this.#update(); });
    on("permissions", (m) => this.#permissions(m));
    on("left", (m) => this.#left(m));
    on("connectionClosed", () => this.#lost());
  }

  // -- in the call -------------------------------------------------------------------------------

  #renderCall() {
    this.media.stopMeter();
    this.status = h("p", { class: "call-state", role: "status" });
    this.facts = h("p", { class: "call-facts" });
    this.live = h("div", { class: "sr-only", "aria-live": "polite" });
    this.stage = h("section", { class: "stage", "aria-label": this.t("participants") });
    this.participantsPanel = new ParticipantPanel(this);
    this.panel = this.participantsPanel.element;
    this.captions = new CaptionsPanel(this);
    this.captionLines = new CaptionLines(this);
    this.captionsPanel = this.captions.element;
    this.devicesPanel = h("aside", { class: "panel devices", hidden: true, "aria-label": this.t("settings") });
    this.toasts = h("div", { class: "toasts", role: "status" });
    this.toolbar = h("div", { class: "toolbar", role: "toolbar", "aria-label": this.t("title") });
    this.audio = h("audio", { autoplay: true });
    this.audio.srcObject = this.call.remoteAudio;
    if (this.devices.speaker && this.audio.setSinkId) this.audio.setSinkId(this.devices.speaker).catch(() => {});
    this.tiles = new Tiles(this.stage, this, this.fit);
    this.root.replaceChildren(
      h("header", {}, this.status, this.facts),
      h("div", { class: "body" }, this.stage, this.panel, this.captionsPanel, this.devicesPanel),
      this.captionLines.element, this.toolbar, this.toasts, this.live, this.captionLines.spoken, this.audio,
    );
    this.#update();
  }

  #update() {
    if (!this.call || !this.stage) return;
    this.status.textContent = this.reconnecting ? this.t("reconnecting") : this.t(`states.${this.call.state}`);
    const until = this.room?.validUntil; // an appointment's end: the call ends with the room
    const everyone = this.everyone();
    const shown = onStage(everyone);
    const watching = everyone.length - shown.length;
    const paged = pageOf(shown, this.page);
    this.page = paged.page;
    this.pages = paged.pages;
    this.facts.textContent = [this.t("inCall", { count: everyone.length }),
      watching ? this.t("watching", { count: watching }) : null,
      paged.pages > 1 ? this.t("pageOf", { page: paged.page + 1, pages: paged.pages }) : null,
      until ? this.t("closesAt", { time: this.time(until) }) : null].filter(Boolean).join(" · ");
    this.tiles.update(paged.tiles);
    this.#showVideo(visibleVideo(paged));
    this.#updateToolbar();
    if (!this.panel.hidden) this.participantsPanel.update();
    if (!this.captionsPanel.hidden) this.captions.update();
    this.captionLines.update();
  }

  /** Ask the server for the videos on screen only when they change (a page, a camera on or off). */
  #showVideo(streams) {
    const wanted = JSON.stringify(streams);
    if (wanted === this.sentVisible || this.call.state === "Connecting") return;
    this.sentVisible = wanted;
    this.call.showVideo(streams).catch((e) => { this.sentVisible = "null"; this.failed(e); });
  }

  everyone() {
    for (const p of this.call.participants.values()) {
      this.names.set(p.participantId, p.displayName);
      this.names.set(p.userId, p.displayName);
    }
    this.names.set(this.client.userId, this.displayName);
    const self = {
      participantId: this.call.participantId, displayName: this.displayName || this.t("you"), role: this.call.role,
      state: this.call.state, camera: this.call.publishing.includes("camera"),
      screenShare: this.call.publishing.includes("screen"), self: true,
      muted: this.call.muted, canSpeak: this.may("sendAudio"),
    };
    return [self, ...this.call.participants.values()];
  }

  #updateToolbar() {
    const call = this.call;
    const onHold = call.state === "OnHold";
    // [control, label key, action, pressed (null: not a toggle), style]
    const buttons = [
      this.may("sendAudio") ? ["mic", this.local.audio && !call.muted ? "muteMic" : "unmuteMic", () => this.#toggleMic(), !this.local.audio || call.muted] : null,
      this.may("sendVideo") ? ["camera", this.local.camera ? "cameraOff" : "cameraOn", () => this.#toggleCamera(), !this.local.camera] : null,
      this.may("shareScreen") ? ["screen", this.local.screen ? "stopSharing" : "shareScreen", () => this.#toggleScreen(), Boolean(this.local.screen)] : null,
      ["layout", "speakerLayout", () => { this.speakerLayout = !this.speakerLayout; this.#update(); }, this.speakerLayout],
      this.pages > 1 && this.page > 0 ? ["previousPage", "previousPage", () => { this.page -= 1; this.#update(); }, null] : null,
      this.pages > 1 && this.page < this.pages - 1 ? ["nextPage", "nextPage", () => { this.page += 1; this.#update(); }, null] : null,
      ["participants", "participants", () => this.#openParticipants(), !this.panel.hidden],
      this.may("startCaptions") || call.captions?.active
        ? ["captions", "captions", () => this.#togglePanel(this.captionsPanel, () => this.captions.update()), !this.captionsPanel.hidden] : null,
      this.may("sendAudio") || this.may("sendVideo")
        ? ["devices", "settings", () => this.#togglePanel(this.devicesPanel, () => this.#updateDevices()), !this.devicesPanel.hidden] : null,
      ["hold", onHold ? "resume" : "hold", () => (onHold ? call.resume() : call.hold()).then(() => this.#update()), onHold],
      ["leave", "leaveCall", () => this.leave(), null, "danger"],
      this.may("endCallForAll") ? ["end", "endForAll", () => call.endForAll(), null, "danger"] : null,
    ].filter(Boolean);
    keepingFocus(this.toolbar, () => this.toolbar.replaceChildren(...buttons.map(([control, key, action, pressed, style]) => h("button", {
      type: "button", class: style || "", "data-key": control,
      "aria-pressed": pressed === null ? undefined : String(Boolean(pressed)),
      onclick: () => Promise.resolve(action()).catch((e) => this.failed(e)),
    }, this.t(key)))));
  }

  async #toggleMic() {
    if (!this.local.audio) {
      // Joined without one (refused, or none plugged in): ask again; a toast says why not.
      if (!(await this.#takeMicrophone(true))) return;
      if (this.call.muted) await this.call.unmute();
    } else if (this.call.muted) {
      this.#sendMic(true);
      await this.call.unmute();
    } else {
      await this.call.mute();
      this.#sendMic(false);
    }
    this.#update();
  }

  /** A microphone into the call's audio connection (promoted, or joined without one); false if
   * the browser gave none (the person was told why). */
  async #takeMicrophone(live) {
    this.local.audio = await this.media.capture("audio", this.devices.mic);
    this.#sendMic(live);
    const track = this.local.audio?.getAudioTracks()[0];
    if (track) await this.call.replaceAudio(track);
    return Boolean(track);
  }

  /** The microphone's track follows the mute state: muted, nothing of it leaves the browser (the
   * server also keeps it out of the mix); the wish is kept for a rejoin after a lost connection. */
  #sendMic(on) {
    this.wanted.mic = on;
    for (const track of this.local.audio?.getAudioTracks() || []) track.enabled = on;
  }

  async #toggleCamera() {
    if (this.local.camera) {
      await this.call.stopVideo("camera");
      this.media.stop("camera");
    } else {
      this.local.camera = await this.media.capture("video", this.devices.camera);
      if (this.local.camera) await this.call.startVideo(this.local.camera);
    }
    this.#update();
  }

  async #toggleScreen() {
    if (this.local.screen) {
      await this.call.stopScreenShare();
      this.media.stop("screen");
    } else {
      this.local.screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
      this.local.screen.getVideoTracks()[0].addEventListener("ended", () => this.local.screen && this.#toggleScreen());
      await this.call.startScreenShare(this.local.screen);
    }
    this.#update();
  }

  #togglePanel(panel, render) {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) render();
    this.#update();
  }

  async #openParticipants() {
    await this.participantsPanel.readIdle();
    this.#togglePanel(this.panel, () => this.participantsPanel.update());
  }

  /** A device could not be opened (LocalDevices asks): said in a toast in the call, else on the
   * pre-join screen. */
  deviceRefused(sentence) {
    if (this.stage) this.toast(sentence); // in the call (the pre-join notices are gone)
    else this.notices.append(h("p", { class: "notice", role: "alert" }, sentence));
  }

  /** Draw the call again (the tiles ask, when a tile's fit changes). */
  redraw() {
    this.#update();
  }

  /** What a participant is, in words: a phone, or their role. */
  kind(p) {
    return p.phoneNumber ? this.t("phone") : this.role(p.role);
  }

  // -- what the server says ------------------------------------------------------------------

  #participantLeft(message) {
    const name = this.names.get(message.participantId) || "";
    const by = message.by ? this.names.get(message.by) || "" : "";
    const text = message.reason && message.reason !== "Left"
      ? this.t("leftBecause", { name, reason: this.reason("leaveReasons", message.reason, { by }) })
      : this.t("left", { name });
    this.toast(text);
    this.#announce(text);
    this.#update();
  }

  async #permissions(message) {
    if (!message.capabilities.includes("sendAudio")) this.media.stop("audio");
    else if (!this.local.audio) {
      // Promoted: a microphone now, silent until the person unmutes (the server keeps a promoted
      // Viewer muted: nobody's microphone goes live by someone else's act).
      await this.#takeMicrophone(!this.call.muted).catch((e) => this.failed(e));
    }
    if (!message.capabilities.includes("sendVideo")) this.media.stop("camera");
    if (!message.capabilities.includes("shareScreen")) this.media.stop("screen");
    this.#announce(this.t("roleChanged", { role: this.role(message.role) }));
    this.#update();
  }

  #left(message) {
    // A call moved to another node (a drain) goes on there: the page joins it again at once.
    const recoverable = ["MediaServerFailure", "ServerShutdown", "CallMoved"].includes(message.callEndReason);
    if ((message.reason === "ConnectionLost" || recoverable) && !this.leaving) {
      this.#lost(); // the media path or the server went away: join again once it is back
      return;
    }
    this.#stopAll();
    const sentence = message.callEndReason
      ? this.strings.endReasons[message.callEndReason] || this.t("callEnded")
      : this.reason("youLeft", message.reason);
    this.#ended(sentence);
  }

  #ended(sentence) {
    this.call = null;
    this.stage = null;
    this.#screen(h("section", { class: "message", role: "alert" }, h("h2", {}, this.t("callEnded")), h("p", {}, sentence),
      h("button", { type: "button", class: "primary", onclick: () => { this.leaving = false; this.start(); } }, this.t("rejoin"))));
  }

  // -- a lost connection: reconnect and rejoin, with back-off -----------------------------------

  async #lost() {
    if (this.leaving || this.reconnecting || !this.stage) return;
    this.reconnecting = true;
    this.root.classList.add("reconnecting");
    this.status.textContent = this.t("reconnecting");
    this.#announce(this.t("reconnecting"));
    this.media.stop("screen");
    const moved = this.call?.movedTo; // a drain named the nodes that stay: those first
    if (moved && this.client) this.client.endpoints = [...moved, ...this.client.endpoints.filter((e) => !moved.includes(e))];
    this.client?.close();
    for (let attempt = 0; !this.leaving; attempt++) {
      await sleep(reconnectDelay(attempt));
      try {
        await this.#connect();
        await this.#enter();
        break;
      } catch (error) {
        if (FINAL_REFUSALS.has(error.code)) {
          this.#stopAll();
          this.#refused(error);
          break;
        }
        if (this.client) this.client.close();
      }
    }
    this.reconnecting = false;
    this.root.classList.remove("reconnecting");
    this.#update();
  }

  // -- leaving -----------------------------------------------------------------------------------

  async leave() {
    this.leaving = true;
    if (this.call) await this.call.leave();
    this.#stopAll();
    this.#ended(this.reason("youLeft", "Left"));
  }

  #stopAll() {
    for (const which of ["audio", "camera", "screen"]) this.media.stop(which);
    this.media.stopMeter();
    if (this.client) this.client.close();
  }

  #announce(text) {
    if (!this.live) return;
    this.live.textContent = "";
    setTimeout(() => { if (this.live) this.live.textContent = text; }, 50);
  }

  /** A request that failed, said as a sentence: the code's (locale "errors"), else the message. */
  failed(error, values = {}) {
    this.toast(this.reason("errors", error.code || error.name, { message: error.message, ...values }));
  }

  toast(text) {
    if (!this.toasts) return;
    const toast = h("p", { class: "toast" }, text);
    this.toasts.append(toast);
    setTimeout(() => toast.remove(), TOAST_MS);
  }
}

/** <vrooms-call endpoint="https://…" token="…" room-id="…" display-name="…" locale="fr"> */
class VroomsCallElement extends HTMLElement {
  connectedCallback() {
    const read = (name) => this.getAttribute(name) || undefined;
    this.ui = VroomsCall.mount(this, {
      endpoint: read("endpoint") || location.origin, token: read("token"), roomId: read("room-id"),
      displayName: read("display-name") || "", locale: read("locale") || navigator.language,
    });
  }

  disconnectedCallback() {
    this.ui?.leave();
  }
}

if (!customElements.get("vrooms-call")) customElements.define("vrooms-call", VroomsCallElement);
