// The devices a person brings to the call: their microphone, camera and screen streams, which
// they want on, which device of each kind is chosen, the pickers to choose them, and the
// microphone's level meter. ``ui`` is the call UI: its strings, capabilities and notices.

import { h } from "./dom.js";

export class LocalDevices {
  constructor(ui) {
    this.ui = ui;
    this.local = { audio: null, camera: null, screen: null };
    this.wanted = { mic: true, camera: true };
    this.devices = { mic: "", camera: "", speaker: "" };
    this.meter = null;
  }

  /** One kind of device, asked for alone: a missing camera must not cost the microphone. */
  async capture(kind, deviceId) {
    const constraints = { [kind]: deviceId ? { deviceId: { exact: deviceId } } : true };
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (error) {
      const device = this.ui.t(kind === "audio" ? "microphone" : "camera").toLowerCase();
      const key = error.name === "NotAllowedError" ? "denied" : error.name === "NotReadableError" ? "busy" : "missing";
      this.ui.deviceRefused(this.ui.t(`devices.${key}`, { device }));
      return null;
    }
  }

  /** Pickers for what the role may use; ``change[key](deviceId)`` switches to the chosen device. */
  async selects(change) {
    const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
    const picker = (kind, label, key) => {
      const options = devices.filter((d) => d.kind === kind && d.deviceId);
      if (!options.length) return null;
      const id = `vrooms-${key}`;
      const select = h("select", { id, onchange: (e) => { this.devices[key] = e.target.value; change[key](e.target.value); } },
        ...options.map((d, n) => h("option", { value: d.deviceId, selected: d.deviceId === this.devices[key] }, d.label || `${label} ${n + 1}`)));
      return h("div", { class: "picker" }, h("label", { for: id }, label), select);
    };
    return [
      this.ui.may("sendVideo") ? picker("videoinput", this.ui.t("camera"), "camera") : null,
      this.ui.may("sendAudio") ? picker("audioinput", this.ui.t("microphone"), "mic") : null,
      "setSinkId" in HTMLMediaElement.prototype ? picker("audiooutput", this.ui.t("speaker"), "speaker") : null,
    ].filter(Boolean);
  }

  /** The microphone's level on ``bar`` (a <meter>), until ``stopMeter``. */
  startMeter(bar) {
    this.stopMeter();
    if (!this.local.audio || !bar) return;
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    context.createMediaStreamSource(this.local.audio).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      const rms = Math.sqrt(samples.reduce((sum, v) => sum + v * v, 0) / samples.length);
      bar.value = Math.min(1, rms * 4);
      this.meter.frame = requestAnimationFrame(tick);
    };
    this.meter = { context, frame: requestAnimationFrame(tick) };
  }

  stopMeter() {
    if (!this.meter) return;
    cancelAnimationFrame(this.meter.frame);
    this.meter.context.close();
    this.meter = null;
  }

  /** Release one local source (``audio``, ``camera``, ``screen``): its tracks stop. */
  stop(which) {
    const stream = this.local[which];
    if (stream) for (const track of stream.getTracks()) track.stop();
    this.local[which] = null;
  }
}
