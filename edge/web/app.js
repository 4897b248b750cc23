// edgeag web page: photo or webcam -> /v1/analyze (or the /v1/stream WebSocket) -> boxes and labels.
// Plain browser JavaScript, no dependencies, no CDN: it must work offline on a LAN or a laptop.
"use strict";

(() => {
  const BOX_COLOR = "#00e676"; // same as --accent in style.css; tests look for it on the canvas
  const PHOTO_SIDE = 1920; // photos are downscaled to this before upload (phone photos are 12+ MP)
  const CAMERA_SIDE = 640; // camera frames are sent at this size
  const REPLY_TIMEOUT_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const stage = $("stage"), video = $("video"), canvas = $("canvas"), ctx = canvas.getContext("2d");
  const scratch = document.createElement("canvas"); // frames are encoded here, off screen
  const el = {
    model: $("model"), licence: $("licence"), error: $("error"), file: $("file"), rate: $("rate"),
    start: $("camera-start"), stop: $("camera-stop"), flip: $("camera-flip"),
    latency: $("latency"), serverMs: $("server-ms"), fps: $("fps"), frames: $("frames"),
    faceCount: $("face-count"), faces: $("faces"), json: $("result-json"),
  };

  let generation = 0; // bumped whenever the input changes; late replies of an older input are dropped
  let camera = null; // {stream, ws, gen, timer, pending, sent, received}
  let facing = "user";
  let frames = 0, frameTimes = [];

  // ------------------------------------------------------------------ helpers
  function showError(message) { el.error.textContent = message; el.error.hidden = false; }
  function clearError() { el.error.hidden = true; el.error.textContent = ""; }

  function encodeJpeg(source, w, h, quality) {
    scratch.width = w; scratch.height = h;
    scratch.getContext("2d").drawImage(source, 0, 0, w, h);
    return new Promise((resolve, reject) => scratch.toBlob(
      (b) => (b ? resolve(b) : reject(new Error("cannot encode the frame"))), "image/jpeg", quality));
  }

  async function postImage(blob) {
    const form = new FormData();
    form.append("image", blob, "image.jpg");
    const r = await fetch("/v1/analyze", { method: "POST", body: form });
    const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok || body.error) throw new Error(body.error || `HTTP ${r.status}`);
    return body;
  }

  function labelOf(f) {
    if (f.age === null) return "? y, ?";  // a face under --min-face: no attributes
    return `${Math.round(f.age)} y, ${f.gender ?? "?"} ${Math.round(100 * f.gender_confidence)}%`;
  }

  function drawBoxes(faces, scale) {
    // Sizes in screen pixels, converted to canvas pixels: labels stay readable on a phone showing a big photo.
    const shown = canvas.getBoundingClientRect().width;
    const k = shown > 0 ? canvas.width / shown : 1;
    const lw = Math.max(2, Math.round(2 * k));
    const fs = Math.round(16 * k);
    const pad = Math.max(2, Math.round(fs / 5));
    ctx.lineWidth = lw;
    ctx.strokeStyle = BOX_COLOR;
    ctx.font = `600 ${fs}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const f of faces) {
      const [x, y, w, h] = f.box.map((v) => v * scale);
      ctx.strokeRect(x, y, w, h);
      const text = labelOf(f);
      const tw = ctx.measureText(text).width + 2 * pad, th = fs + 2 * pad;
      const ty = y - lw / 2 - th >= 0 ? y - lw / 2 - th : y + h + lw / 2; // above the box, else below
      const tx = Math.max(0, Math.min(x - lw / 2, canvas.width - tw)); // keep the label inside the canvas
      ctx.fillStyle = BOX_COLOR;
      ctx.fillRect(tx, ty, tw, th);
      ctx.fillStyle = "#000";
      ctx.fillText(text, tx + pad, ty + pad);
    }
  }

  function resetStats() {
    frames = 0; frameTimes = [];
    el.frames.textContent = "0"; el.frames.dataset.count = "0";
    el.fps.textContent = "-";
  }

  // Results go into the DOM too (list with data- attributes + raw JSON), for people and for tests.
  function record(result, latencyMs) {
    const now = performance.now();
    frames += 1;
    frameTimes.push(now);
    while (frameTimes.length > 2 && now - frameTimes[0] > 3000) frameTimes.shift();
    el.frames.textContent = String(frames); el.frames.dataset.count = String(frames);
    if (frameTimes.length >= 2) {
      el.fps.textContent = ((1000 * (frameTimes.length - 1)) / (now - frameTimes[0])).toFixed(1);
    }
    el.latency.textContent = latencyMs.toFixed(0); el.latency.dataset.ms = latencyMs.toFixed(1);
    const server = result.timings ? result.timings.total_ms : null;
    el.serverMs.textContent = server == null ? "-" : server.toFixed(0);
    el.serverMs.dataset.ms = server == null ? "" : String(server);
    el.faceCount.textContent = String(result.faces.length); el.faceCount.dataset.count = String(result.faces.length);
    el.json.textContent = JSON.stringify(result);

    const items = result.faces.map((f, i) => {
      const li = document.createElement("li");
      li.className = "face";
      Object.assign(li.dataset, {
        index: String(i), age: String(f.age ?? ""), gender: f.gender ?? "",
        genderConfidence: String(f.gender_confidence ?? ""),
        ethnicity: f.ethnicity ?? "", score: String(f.score), box: f.box.join(","),
      });
      const b = document.createElement("b");
      b.textContent = labelOf(f);
      const small = document.createElement("small");
      const eth = f.ethnicity ? `${f.ethnicity} ${Math.round(100 * f.ethnicity_confidence)}% · ` : "";
      small.textContent = `${eth}box ${f.box.join(", ")} · score ${f.score.toFixed(2)}`;
      li.append(b, small);
      return li;
    });
    el.faces.replaceChildren(...items);
  }

  // ------------------------------------------------------------------ photos
  async function analyzeFile(file) {
    if (!file) return;
    stopCamera();
    clearError();
    const gen = ++generation;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file); // applies the EXIF orientation, like the server's decoder
    } catch (e) {
      showError(`${file.name || "file"}: not an image this browser can read`);
      return;
    }
    const s = Math.min(1, PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
    const w = Math.round(bitmap.width * s), h = Math.round(bitmap.height * s);
    canvas.width = w; canvas.height = h;
    ctx.drawImage(bitmap, 0, 0, w, h);
    bitmap.close();
    stage.dataset.mode = "image";
    resetStats();
    const t0 = performance.now();
    try {
      // What is sent is exactly what is shown, so the boxes line up whatever the file's format or rotation.
      const blob = await encodeJpeg(canvas, w, h, 0.92);
      const result = await postImage(blob);
      if (gen !== generation) return;
      const scale = w / result.width;
      canvas.dataset.scale = String(scale);
      drawBoxes(result.faces, scale);
      record(result, performance.now() - t0);
    } catch (e) {
      if (gen === generation) showError(e.message);
    }
  }

  // ------------------------------------------------------------------ camera
  function openSocket(cam) {
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream`);
      } catch (e) {
        resolve(null);
        return;
      }
      const timer = setTimeout(() => { ws.close(); resolve(null); }, 3000);
      ws.onopen = () => { clearTimeout(timer); resolve(ws); };
      ws.onerror = () => { clearTimeout(timer); resolve(null); };
      ws.onclose = () => {
        if (cam.ws === ws) cam.ws = null; // fall back to HTTP POST
        if (cam.pending) cam.pending.reject(new Error("connection closed"));
      };
      ws.onmessage = (ev) => {
        cam.received += 1;
        const p = cam.pending;
        if (!p || p.seq !== cam.received) return; // a reply that arrived after its timeout
        cam.pending = null;
        let data;
        try { data = JSON.parse(ev.data); } catch (e) { p.reject(new Error("bad reply from server")); return; }
        if (data.error) p.reject(new Error(data.error)); else p.resolve(data);
      };
    });
  }

  function sendOnSocket(cam, blob) {
    return new Promise((resolve, reject) => {
      cam.sent += 1;
      const timer = setTimeout(() => { cam.pending = null; reject(new Error("no reply from server")); },
        REPLY_TIMEOUT_MS);
      cam.pending = {
        seq: cam.sent,
        resolve: (d) => { clearTimeout(timer); resolve(d); },
        reject: (e) => { clearTimeout(timer); cam.pending = null; reject(e); },
      };
      cam.ws.send(blob);
    });
  }

  // One frame in flight at a time: the next is captured only after the reply, at most `rate` per second.
  async function captureAndSend(cam) {
    if (cam !== camera) return;
    if (video.readyState < 2 || !video.videoWidth) { cam.timer = setTimeout(() => captureAndSend(cam), 50); return; }
    const t0 = performance.now();
    const s = Math.min(1, CAMERA_SIDE / Math.max(video.videoWidth, video.videoHeight));
    const w = Math.round(video.videoWidth * s), h = Math.round(video.videoHeight * s);
    let result = null;
    try {
      const blob = await encodeJpeg(video, w, h, 0.8);
      result = cam.ws && cam.ws.readyState === WebSocket.OPEN ? await sendOnSocket(cam, blob) : await postImage(blob);
    } catch (e) {
      if (cam === camera) showError(e.message);
    }
    if (cam !== camera) return;
    if (result) {
      if (!el.error.hidden) clearError();
      canvas.width = w; canvas.height = h; // also clears the overlay
      const scale = w / result.width;
      canvas.dataset.scale = String(scale);
      drawBoxes(result.faces, scale);
      record(result, performance.now() - t0);
    }
    const rate = Number(el.rate.value);
    const interval = result ? (rate > 0 ? 1000 / rate : 0) : 1000; // back off while failing
    cam.timer = setTimeout(() => captureAndSend(cam), Math.max(0, interval - (performance.now() - t0)));
  }

  async function startCamera() {
    clearError();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError("The camera needs a secure page: open this page as http://localhost on this machine, or over "
        + "HTTPS (edgeag serve --ssl-certfile ... --ssl-keyfile ...). Photos work anyway.");
      return;
    }
    stopCamera();
    const gen = ++generation;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: facing, width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (e) {
      showError(`camera unavailable: ${e.name === "NotAllowedError" ? "permission denied" : (e.message || e.name)}`);
      return;
    }
    if (gen !== generation) { stream.getTracks().forEach((t) => t.stop()); return; }
    const cam = { stream, ws: null, gen, timer: 0, pending: null, sent: 0, received: 0 };
    camera = cam;
    video.srcObject = stream;
    await video.play().catch(() => {});
    stage.dataset.mode = "camera";
    el.start.disabled = true; el.stop.disabled = false; el.flip.disabled = false;
    resetStats();
    cam.ws = await openSocket(cam);
    captureAndSend(cam);
  }

  function stopCamera() {
    const cam = camera;
    if (!cam) return;
    camera = null;
    generation += 1;
    clearTimeout(cam.timer);
    if (cam.ws) cam.ws.close();
    cam.stream.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
    if (stage.dataset.mode === "camera") stage.dataset.mode = "idle";
    el.start.disabled = false; el.stop.disabled = true; el.flip.disabled = true;
  }

  // ------------------------------------------------------------------ model info and wiring
  async function loadModel() {
    try {
      const r = await fetch("/v1/model");
      const info = await r.json();
      const m = info.metadata || {};
      const size = m.crop ? `${m.crop.size}px` : "";
      el.model.textContent = [info.file, m.mode, size, m.edgeag_version && `v${m.edgeag_version}`]
        .filter(Boolean).join(" · ");
      const lic = m.training && m.training.licence;
      if (lic) el.licence.textContent = `Model licence: ${lic}.`;
    } catch (e) {
      el.model.textContent = "model info unavailable";
    }
  }

  el.start.addEventListener("click", startCamera);
  el.stop.addEventListener("click", stopCamera);
  el.flip.addEventListener("click", () => {
    facing = facing === "user" ? "environment" : "user";
    if (camera) startCamera();
  });
  el.file.addEventListener("change", () => {
    const f = el.file.files && el.file.files[0];
    el.file.value = ""; // choosing the same file again still fires "change"
    analyzeFile(f);
  });
  for (const type of ["dragenter", "dragover"]) {
    stage.addEventListener(type, (e) => { e.preventDefault(); stage.classList.add("dragover"); });
  }
  stage.addEventListener("dragleave", () => stage.classList.remove("dragover"));
  stage.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("dragover");
    analyzeFile(e.dataTransfer && e.dataTransfer.files[0]);
  });
  window.addEventListener("pagehide", stopCamera);
  loadModel();
})();
