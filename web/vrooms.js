// vrooms calling client for browsers: signaling protocol v1 (docs/calling-protocol.md) over
// WebSocket, media over WebRTC straight to the media server. No dependencies.
//
//   const client = await VroomsClient.connect("https://host:8443", token);
//   const call = await client.join(roomId, { audio: micStream, displayName: "Dr. Who" });
//   await call.startVideo(cameraStream);
//   call.addEventListener("participantJoined", (e) => console.log(e.detail.participant));

function websocketUrl(endpoint, token) {
  const url = new URL("/calling/v1", endpoint);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("access_token", token); // browsers cannot set headers on a WebSocket
  return url.toString();
}

function gathered(pc) {
  // The server takes complete offers and answers (no trickle): wait for ICE gathering.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// As long as the Python SDK waits; a server that does not answer by then is treated as gone.
const REQUEST_TIMEOUT_MS = 20000;

// Coming back after the call's node went away or the call moved (a cluster): refusals that a
// moment later may be a success, and how long to keep trying.
const TRANSIENT = new Set(["NotConnected", "CallsUnavailable", "MediaUnavailable", "RoomOnAnotherNode", "AlreadyInCall", "RateLimited"]);
const COME_BACK_MS = 60000;

// 0.1-0.2 s, then doubling to 0.75-1.5 s, drawn at random in the upper half: a thousand clients of
// a lost node do not come back in the same millisecond.
function comeBackDelay(attempt) {
  return Math.min(1500, 200 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Which capability each published source needs (the server's role table decides; this follows it).
const SOURCE_CAPABILITY = { camera: "sendVideo", screen: "shareScreen" };

export class CallError extends Error {
  // details: the error's other fields (a RoomNotYetOpen refusal carries validFrom).
  constructor(code, message, details = {}) {
    super(`${code}: ${message}`);
    this.code = code;
    this.details = details;
  }
}

function errorOf(message) {
  const { type, id, code, message: text, ...details } = message;
  return new CallError(code, text, details);
}

export class VroomsClient extends EventTarget {
  static async connect(endpoint, token) {
    const client = new VroomsClient();
    client.#token = token;
    client.endpoints = [endpoint];
    client.currentEndpoint = endpoint;
    await client.#open(websocketUrl(endpoint, token));
    return client;
  }

  /** A new connection through the first known endpoint that answers (a cluster names its nodes in the hello). */
  async reconnect() {
    let failure = new CallError("NotConnected", "no endpoint answered");
    for (const endpoint of this.endpoints) {
      try {
        await this.#open(websocketUrl(endpoint, this.#token));
        this.currentEndpoint = endpoint;
        return;
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  }

  /** The call moved: come back through these nodes first; leave this one if it is not among them. */
  moveTo(nodes) {
    this.endpoints = [...nodes, ...this.endpoints.filter((e) => !nodes.includes(e))];
    if (!nodes.includes(this.currentEndpoint)) this.#ws.close();
  }

  #learn(nodes) {
    for (const node of nodes || []) if (!this.endpoints.includes(node)) this.endpoints.push(node);
  }

  get connected() {
    return this.#ws !== null && this.#ws.readyState === WebSocket.OPEN;
  }

  #token = "";
  #closing = false;
  endpoints = [];
  currentEndpoint = "";
  clustered = false;
  #ws = null;
  #nextId = 1;
  #pending = new Map();
  call = null;
  userId = "";

  #open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      this.#ws = ws;
      let opened = false;
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "hello") {
          this.userId = message.userId;
          opened = true;
          // A cluster names its nodes: a call there outlives the node it is on.
          this.clustered = this.clustered || (message.nodes || []).length > 0;
          this.#learn(message.nodes);
          resolve();
        } else if (message.type === "error" && message.id === null && !opened) {
          reject(errorOf(message));
        } else if ((message.type === "result" || message.type === "error") && this.#pending.has(message.id)) {
          const { ok, fail } = this.#pending.get(message.id);
          this.#pending.delete(message.id);
          message.type === "result" ? ok(message) : fail(errorOf(message));
        } else {
          if (message.type === "invite") this.dispatchEvent(new CustomEvent("invite", { detail: message }));
          if (message.type === "nodes") this.#learn(message.nodes);
          if (this.call) this.call.handle(message);
        }
      };
      ws.onclose = () => {
        if (ws !== this.#ws) return; // a connection replaced by a newer one
        for (const { fail } of this.#pending.values()) fail(new CallError("NotConnected", "connection closed"));
        this.#pending.clear();
        if (this.call) this.call.handle({ type: "connectionClosed", closing: this.#closing });
        this.dispatchEvent(new CustomEvent("closed"));
        reject(new CallError("NotConnected", "connection closed"));
      };
    });
  }

  request(message) {
    const id = this.#nextId++;
    return new Promise((ok, fail) => {
      if (this.#ws.readyState !== WebSocket.OPEN) {
        fail(new CallError("NotConnected", "connection closed"));
        return;
      }
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        fail(new CallError("Timeout", `no reply to ${message.type} within ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
      const settle = (callback) => (value) => {
        clearTimeout(timer);
        callback(value);
      };
      this.#pending.set(id, { ok: settle(ok), fail: settle(fail) });
      this.#ws.send(JSON.stringify({ ...message, id }));
    });
  }

  /** What joining would give (role, capabilities, validity window), or the refusal, without joining. */
  checkRoom(roomId) {
    return this.request({ type: "checkRoom", roomId });
  }

  /** ``comeBack``: in a cluster, join the same call again by itself when its node goes (default). */
  async join(roomId, { audio = null, displayName = "", comeBack = true } = {}) {
    const call = new Call(this, roomId, { comeBack });
    this.call = call;
    await call.start(audio, displayName);
    return call;
  }

  close() {
    this.#closing = true;
    this.#ws.close();
  }
}

export class Call extends EventTarget {
  state = "Connecting";
  participants = new Map();
  remoteAudio = new MediaStream();
  // participantId -> { camera: MediaStream, screen: MediaStream }
  remoteVideo = new Map();
  // The TURN servers the room's checkRoom named (none: host candidates only).
  iceServers = [];
  #audioPc = new RTCPeerConnection();
  #publishers = new Map();
  #subscriber = null;
  #mids = new Map();
  #renegotiation = Promise.resolve();
  // What the join sent, to send it again when the call comes back on another node.
  #audioStream = null;
  #displayName = "";
  #leaving = false;
  #comingBack = false;

  constructor(client, roomId, { comeBack = true } = {}) {
    super();
    this.client = client;
    this.roomId = roomId;
    this.comeBack = comeBack;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #setState(state) {
    if (state !== this.state) {
      this.state = state;
      this.#emit("stateChanged", { state });
    }
  }

  async start(audioStream, displayName, { muted = false } = {}) {
    this.#audioStream = audioStream;
    this.#displayName = displayName;
    const room = await this.client.checkRoom(this.roomId);
    this.iceServers = room.iceServers || [];
    this.#audioPc.close(); // made before the ICE servers were known, never used
    const pc = (this.#audioPc = this.#peerConnection());
    pc.ontrack = (event) => {
      for (const old of this.remoteAudio.getTracks()) this.remoteAudio.removeTrack(old);
      this.remoteAudio.addTrack(event.track);
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.#audioPc) return; // left behind when the call came back on another node
      if (pc.connectionState === "connected") this.#setState("Connected");
      if (pc.connectionState === "failed") this.#setState("Disconnected");
    };
    const track = audioStream ? audioStream.getAudioTracks()[0] : null;
    if (track) pc.addTransceiver(track, { direction: "sendrecv" });
    else pc.addTransceiver("audio", { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const reply = await this.client.request({
      type: "join",
      roomId: this.roomId,
      displayName,
      sdp: pc.localDescription.sdp,
      ...(muted ? { muted: true } : {}),
    });
    Object.assign(this, {
      id: reply.callId,
      participantId: reply.participantId,
      role: reply.role,
      capabilities: reply.capabilities,
      activeSpeaker: reply.activeSpeaker,
      captions: reply.captions,
    });
    for (const p of reply.participants) {
      if (p.participantId === this.participantId) this.muted = p.muted;
      else this.participants.set(p.participantId, p);
    }
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  }

  handle(message) {
    switch (message.type) {
      case "participantJoined":
      case "participantUpdated":
        if (message.participant.participantId === this.participantId) this.muted = message.participant.muted;
        else this.participants.set(message.participant.participantId, message.participant);
        break;
      case "participantLeft":
        this.participants.delete(message.participantId);
        this.remoteVideo.delete(message.participantId);
        break;
      case "activeSpeaker":
        this.activeSpeaker = message.participantId;
        break;
      case "permissions":
        this.role = message.role;
        this.capabilities = message.capabilities;
        this.#dropForbiddenMedia();
        break;
      case "mutedByOthers":
        this.muted = true;
        break;
      case "captions": // the languages there are models for, and the engine, stay as the join said
        this.captions = { ...this.captions, active: message.active, language: message.language, uncaptioned: message.uncaptioned ?? this.captions.uncaptioned };
        break;
      case "videoOffer":
        // One at a time, in order; a failed one is reported and does not stop the ones after it.
        this.#renegotiation = this.#renegotiation
          .then(() => this.#answerVideo(message))
          .catch((error) => this.#emit("mediaError", { during: "videoOffer", error }));
        break;
      case "callMoved":
        this.movedTo = message.nodes || [];
        break;
      case "left":
        if (message.reason === "CallMoved" && this.comeBack) {
          this.#comeBack(); // the call goes on on another node
          break;
        }
        this.leftReason = message.reason;
        this.endReason = message.callEndReason || null;
        this.#setState("Disconnected");
        this.#closeMedia();
        break;
      case "connectionClosed":
        if (this.state === "Disconnected") break;
        if (!message.closing && !this.#leaving && this.client.clustered && this.comeBack) {
          this.#comeBack(); // its node went away: in a cluster, the call goes on on another
          break;
        }
        this.leftReason = "ConnectionLost";
        this.#setState("Disconnected");
        this.#closeMedia();
        break;
    }
    this.#emit(message.type, message);
  }

  /** Join the same room again, through any node, until it works or a minute has passed. */
  async #comeBack() {
    if (this.#comingBack) return;
    this.#comingBack = true;
    this.#setState("Connecting");
    for (const source of this.#publishers.keys()) this.#emit("localVideoStopped", { source, reason: "moved" });
    this.#closeMedia();
    if (this.movedTo) {
      this.client.moveTo(this.movedTo); // a drain: switch now to a node that stays
      this.movedTo = null;
    }
    const deadline = Date.now() + COME_BACK_MS;
    for (let attempt = 0; Date.now() < deadline && !this.#leaving; attempt++) {
      await sleep(comeBackDelay(attempt));
      try {
        if (!this.client.connected) await this.client.reconnect();
        this.#resetMedia();
        await this.start(this.#audioStream, this.#displayName, { muted: Boolean(this.muted) });
        this.#comingBack = false;
        this.#emit("cameBack", { callId: this.id });
        return;
      } catch (error) {
        this.#closeMedia();
        if (!TRANSIENT.has(error.code)) break;
      }
    }
    this.#comingBack = false;
    this.leftReason = "ConnectionLost";
    this.#setState("Disconnected");
  }

  #peerConnection() {
    return new RTCPeerConnection({ iceServers: this.iceServers });
  }

  #resetMedia() {
    this.#audioPc = this.#peerConnection();
    this.#subscriber = null;
    this.#mids.clear();
    this.participants.clear();
    this.remoteVideo.clear();
  }

  // The server has already unpublished what the new role forbids; stop sending it here too.
  #dropForbiddenMedia() {
    for (const [source, pc] of this.#publishers) {
      if (this.capabilities.includes(SOURCE_CAPABILITY[source])) continue;
      this.#publishers.delete(source);
      pc.close();
      this.#emit("localVideoStopped", { source, reason: "permissions" });
    }
  }

  get publishing() {
    return [...this.#publishers.keys()];
  }

  async #answerVideo(offer) {
    if (!this.#subscriber) {
      this.#subscriber = this.#peerConnection();
      this.#subscriber.ontrack = (event) => {
        const owner = this.#mids.get(event.transceiver.mid);
        if (!owner) return;
        // Audio for this participant alone (a Call Automation prompt): played with the mix.
        if (owner.kind === "audio") {
          this.remoteAudio.addTrack(event.track);
          return;
        }
        const entry = this.remoteVideo.get(owner.participantId) || {};
        entry[owner.source] = new MediaStream([event.track]);
        this.remoteVideo.set(owner.participantId, entry);
        this.#emit("remoteVideo", owner);
      };
    }
    for (const stream of offer.streams) this.#mids.set(stream.mid, stream);
    const pc = this.#subscriber;
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await this.client.request({ type: "videoAnswer", sdp: pc.localDescription.sdp });
  }

  request(message) {
    return this.client.request(message);
  }

  // What this call has received so far, from the peer connections' RTP statistics.
  async inboundStats() {
    const totals = { audioPackets: 0, videoFramesDecoded: 0 };
    for (const pc of [this.#audioPc, this.#subscriber].filter(Boolean)) {
      for (const report of (await pc.getStats()).values()) {
        if (report.type !== "inbound-rtp") continue;
        if (report.kind === "audio") totals.audioPackets += report.packetsReceived || 0;
        if (report.kind === "video") totals.videoFramesDecoded += report.framesDecoded || 0;
      }
    }
    return totals;
  }

  async mute() {
    await this.request({ type: "setMuted", muted: true });
    this.muted = true;
  }

  async unmute() {
    await this.request({ type: "setMuted", muted: false });
    this.muted = false;
  }

  // Out of the mix and shown OnHold to the others; playback of the mix stops meanwhile.
  async hold() {
    await this.request({ type: "hold" });
    for (const track of this.remoteAudio.getAudioTracks()) track.enabled = false;
    this.#setState("OnHold");
  }

  async resume() {
    await this.request({ type: "resume" });
    for (const track of this.remoteAudio.getAudioTracks()) track.enabled = true;
    this.#setState("Connected");
  }

  /** Send this microphone: it replaces the one sent so far, or, on a connection that was
   * receive-only (joined as a Consumer, promoted since), is offered to the server anew. */
  async replaceAudio(track) {
    const pc = this.#audioPc;
    const transceiver = pc.getTransceivers().find((t) => t.receiver.track.kind === "audio");
    if (!transceiver) return;
    await transceiver.sender.replaceTrack(track);
    if (transceiver.direction === "sendrecv") return;
    transceiver.direction = "sendrecv";
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const reply = await this.request({ type: "audioOffer", sdp: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  }

  /** Send another camera (or screen) in place of the one being published: the same feed, no
   * renegotiation, so nobody's subscription changes and the picture never goes away; the encoder
   * starts the new track with a full picture. Publishes afresh when nothing is published yet. */
  async replaceVideo(stream, source = "camera") {
    const pc = this.#publishers.get(source);
    if (!pc) return this.startVideo(stream, source);
    await pc.getSenders()[0].replaceTrack(stream.getVideoTracks()[0]); // its one video stream
  }

  /** Frames decoded so far of each video received, by "participantId:source" (getStats). */
  async videoReceived() {
    const received = {};
    if (!this.#subscriber) return received;
    for (const report of (await this.#subscriber.getStats()).values()) {
      const owner = report.type === "inbound-rtp" && report.kind === "video" ? this.#mids.get(report.mid) : null;
      if (owner) received[`${owner.participantId}:${owner.source}`] = report.framesDecoded || 0;
    }
    return received;
  }

  /** Receive only these videos, [{ participantId, source }] (the tiles on screen); null: every video. */
  showVideo(streams) {
    return this.request({ type: "visibleVideo", streams });
  }

  async startVideo(stream, source = "camera") {
    await this.stopVideo(source);
    const pc = this.#peerConnection();
    pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    try {
      const reply = await this.request({ type: "publish", source, sdp: pc.localDescription.sdp });
      await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
      this.#publishers.set(source, pc);
    } catch (error) {
      pc.close();
      throw error;
    }
  }

  async stopVideo(source = "camera") {
    const pc = this.#publishers.get(source);
    if (!pc) return;
    this.#publishers.delete(source);
    await this.request({ type: "unpublish", source }).catch(() => {});
    pc.close();
  }

  startScreenShare(stream) {
    return this.startVideo(stream, "screen");
  }

  stopScreenShare() {
    return this.stopVideo("screen");
  }

  muteParticipant(participantId) {
    return this.request({ type: "muteParticipant", participantId });
  }

  removeParticipant(participantId) {
    return this.request({ type: "removeParticipant", participantId });
  }

  /** Bring a phone (E.164, "+15551234567") into the call; resolves to its participant id.
   * Needs pstnDialOut and a room with pstnDialOutEnabled; digits it keys arrive as "dtmfReceived". */
  async dialOut(phoneNumber) {
    return (await this.request({ type: "dialOut", phoneNumber })).participantId;
  }

  sendDtmf(participantId, tones) {
    return this.request({ type: "sendDtmf", participantId, tones });
  }

  endForAll() {
    return this.request({ type: "endForAll" });
  }

  async leave() {
    this.#leaving = true;
    if (this.state !== "Disconnected") await this.request({ type: "leave" }).catch(() => {});
    this.#closeMedia();
  }

  #closeMedia() {
    this.#audioPc.close();
    for (const pc of this.#publishers.values()) pc.close();
    this.#publishers.clear();
    if (this.#subscriber) this.#subscriber.close();
  }
}
