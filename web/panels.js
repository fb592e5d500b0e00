// The call's side panels: who is in the call (with what the person may do to them: mute,
// remove, invite a roster member, dial a phone) and the captions. ``ui`` is the call UI: its
// strings, capabilities, call, and how it says a failure.

import { h, keepingFocus } from "./dom.js";
import { mutedBadge } from "./stage.js";

export class ParticipantPanel {
  constructor(ui) {
    this.ui = ui;
    this.element = h("aside", { class: "panel", hidden: true, "aria-label": ui.t("participants") });
    this.lists = null; // built when the panel first opens
    this.idle = []; // roster members not in the call (for invitations), read when the panel opens
  }

  /** Before it opens: the roster members not in the call, whom the person may invite. */
  async readIdle() {
    if (this.element.hidden && this.ui.may("invite")) {
      const reply = await this.ui.call.request({ type: "listParticipants" }).catch(() => ({ idle: [] }));
      this.idle = reply.idle || [];
    }
  }

  /** The participant panel: its lists are redrawn on every change, keeping the focused button;
   * the phone form is built once, so a number being typed survives the redraws. */
  update() {
    if (!this.lists) {
      this.lists = h("div");
      this.dialForm = this.#dialForm();
      this.element.replaceChildren(h("h2", {}, this.ui.t("participants")), this.lists, this.dialForm);
    }
    this.dialForm.hidden = !this.ui.may("pstnDialOut");
    keepingFocus(this.lists, () => this.lists.replaceChildren(
      h("ul", {}, ...this.ui.everyone().map((p) => this.#row(p))),
      this.ui.may("invite") ? this.#inviteList() : "",
    ));
  }

  #row(p) {
    const name = p.self ? this.ui.t("youName", { name: p.displayName }) : p.displayName;
    const act = (key, label, action, style) => h("button", { type: "button", class: style, "data-key": `${key}:${p.participantId}`,
      onclick: () => action(p.participantId).catch((e) => this.ui.failed(e)) }, this.ui.t(label, { name: p.displayName }));
    const actions = [
      !p.self && this.ui.may("muteOthers") && p.canSpeak && !p.muted ? act("mute", "muteName", (id) => this.ui.call.muteParticipant(id)) : null,
      !p.self && this.ui.may("removeParticipant") ? act("remove", "removeName", (id) => this.ui.call.removeParticipant(id), "danger") : null,
    ];
    const facts = [this.ui.kind(p), this.ui.t(`states.${p.state}`), mutedBadge(p) ? this.ui.t("muted") : null].filter(Boolean).join(" · ");
    return h("li", {}, h("span", { class: "name" }, name), h("span", { class: "facts" }, facts), h("span", { class: "actions" }, ...actions));
  }

  #inviteList() {
    const list = h("ul", { class: "idle" });
    const inCall = new Set([...this.ui.call.participants.values()].map((p) => p.userId));
    for (const member of this.idle.filter((m) => !inCall.has(m.userId))) {
      // The roster has no names: the one this user had in the call earlier, else role and id.
      const name = this.ui.names.get(member.userId) || `${this.ui.role(member.role)} …${member.userId.slice(-6)}`;
      list.append(h("li", {}, h("span", { class: "name" }, name), h("span", { class: "facts" }, this.ui.t("notInCall")),
        h("button", { type: "button", "data-key": `invite:${member.userId}`, onclick: () => this.ui.call.request({ type: "invite", userId: member.userId })
          .then(() => this.ui.toast(this.ui.t("inviting", { name }))).catch((e) => this.ui.failed(e, { name })) }, this.ui.t("inviteName", { name }))));
    }
    return list;
  }

  #dialForm() {
    // E.164, as the server takes it: the browser says what is wrong before anything is sent.
    const input = h("input", { id: "vrooms-phone", type: "tel", placeholder: "+15551234567", autocomplete: "tel",
      required: true, pattern: "\\+[1-9][0-9]{6,14}", "aria-describedby": "vrooms-phone-hint" });
    return h("form", { class: "dial", onsubmit: (event) => {
      event.preventDefault();
      this.ui.call.dialOut(input.value.trim()).then(() => { input.value = ""; }).catch((e) => this.ui.failed(e));
    } }, h("label", { for: "vrooms-phone" }, this.ui.t("phoneNumber")), input,
    h("p", { id: "vrooms-phone-hint", class: "hint" }, this.ui.t("phoneHint")), h("button", { type: "submit" }, this.ui.t("callPhone")));
  }
}

/** The captions under the stage: each speaker's line as it grows (Partial), kept once Final;
 * the last few lines stay, and finished ones are read out to screen readers. */
export class CaptionLines {
  static KEPT = 3;

  constructor(ui) {
    this.ui = ui;
    this.lines = []; // { speaker, name, text, final }
    this.element = h("div", { class: "caption-lines", hidden: true });
    this.spoken = h("div", { class: "sr-only", "aria-live": "polite" });
  }

  received(message) {
    const speaker = message.speaker.participantId;
    const open = this.lines.find((line) => line.speaker === speaker && !line.final);
    const line = open || { speaker, name: message.speaker.displayName || message.speaker.identifier };
    line.text = message.spokenText;
    line.final = message.resultType === "Final";
    if (!open) this.lines.push(line);
    if (line.final) this.spoken.textContent = `${line.name}: ${line.text}`;
    while (this.lines.filter((l) => l.final).length > CaptionLines.KEPT) this.lines.splice(this.lines.findIndex((l) => l.final), 1);
    this.update();
  }

  update() {
    const active = Boolean(this.ui.call.captions?.active);
    if (!active) this.lines = [];
    this.element.hidden = !active || this.lines.length === 0;
    this.element.replaceChildren(...this.lines.map((line) => h("p", { class: line.final ? "final" : "partial" },
      h("strong", {}, `${line.name}: `), line.text)));
  }
}

export class CaptionsPanel {
  constructor(ui) {
    this.ui = ui;
    this.element = h("aside", { class: "panel captions", hidden: true, "aria-label": ui.t("captions") });
  }

  update() {
    const captions = this.ui.call.captions || { active: false, language: "en-us" };
    const items = [h("h2", {}, this.ui.t("captions")),
      h("p", {}, captions.active ? this.ui.t("captionsOn", { language: captions.language }) : this.ui.t("captionsOff"))];
    if (captions.engine) items.push(h("p", { class: "engine" }, this.ui.t("captionsEngine", { engine: captions.engine })));
    const waiting = (captions.active && captions.uncaptioned) || [];
    if (waiting.length) {
      const names = waiting.map((id) => this.ui.everyone().find((p) => p.participantId === id)?.displayName || id);
      items.push(h("p", { class: "notice", role: "status" }, this.ui.t("captionsLimited", { names: names.join(", ") })));
    }
    if (this.ui.may("startCaptions")) {
      const action = captions.active ? "stop" : "start";
      items.push(h("button", { type: "button", onclick: () => this.#request({ action }) }, this.ui.t(captions.active ? "stopCaptions" : "startCaptions")));
    }
    if (captions.active && this.ui.may("changeCaptionLanguage")) {
      const select = h("select", { id: "vrooms-caption-language", onchange: (e) => this.#request({ action: "setLanguage", language: e.target.value }) },
        ...(captions.supportedSpokenLanguages || [captions.language]).map((l) => h("option", { value: l, selected: l === captions.language }, l)));
      items.push(h("label", { for: "vrooms-caption-language" }, this.ui.t("captionsLanguage")), select);
    }
    this.element.replaceChildren(...items);
  }

  async #request(request) {
    const reply = await this.ui.call.request({ type: "captions", ...request }).catch((e) => this.ui.failed(e));
    if (reply) this.ui.call.captions = { ...this.ui.call.captions, active: reply.active, language: reply.language };
    this.ui.redraw();
  }
}
