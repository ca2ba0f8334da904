// Uploads: SHA-256 in a Web Worker while reading the file slice by slice, then the multipart
// flow of the API (parts straight to their signed URLs, 3 at a time, with retries).
import { api, ApiError, errorFromResponse, FEATURES, formatBytes, h, refreshQuota } from "./core.js";

const PARALLEL_PARTS = 3;
const PART_ATTEMPTS = 4;
const HASH_WEIGHT = 0.15; // share of a file's progress bar spent hashing
// Part size: the server's default, so the content hash (over blocks of the part size)
// matches other uploads of the same bytes; grown in whole MiB past 10,000 parts.
const MiB = 1024 * 1024;
const PART_SIZE = 8 * MiB;

export function partSizeFor(size) {
  const grown = Math.max(PART_SIZE, Math.ceil(size / 10000));
  return Math.ceil(grown / MiB) * MiB;
}

let worker = null;
let nextHashId = 1;
const hashJobs = new Map();

function hashWorker() {
  if (!worker) {
    worker = new Worker("/static/js/hash-worker.js", { type: "module" });
    worker.onmessage = (ev) => {
      const job = hashJobs.get(ev.data.id);
      if (!job) return;
      if (ev.data.type === "progress") job.onProgress(ev.data.done);
      else {
        hashJobs.delete(ev.data.id);
        if (ev.data.type === "done") job.resolve({ hex: ev.data.hex, parts: ev.data.parts });
        else job.reject(new Error(`The file could not be read: ${ev.data.message}`));
      }
    };
  }
  return worker;
}

/** SHA-256 (hex) of a File, and with `partSize` each part's SHA-256 (base64, or null
 * where WebCrypto is unavailable): `{hex, parts}`, computed in the worker. */
export function hashFile(file, partSize, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const id = nextHashId++;
    hashJobs.set(id, { resolve, reject, onProgress });
    hashWorker().postMessage({ id, file, partSize });
  });
}

/** SHA-256 (hex) of a File, computed in the worker. */
export async function sha256File(file, onProgress = () => {}) {
  return (await hashFile(file, 0, onProgress)).hex;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** PUT one part with XHR (for upload progress); resolves to its ETag. */
function putPart(part, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(part.method || "PUT", part.url);
    for (const [k, v] of Object.entries(part.headers || {})) {
      // The browser sets these itself and refuses scripts that try.
      if (!["host", "content-length"].includes(k.toLowerCase())) xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        const etag = xhr.getResponseHeader("ETag");
        if (!etag) {
          const err = new Error("Storage did not expose the part's ETag (check the bucket's CORS rule: ExposeHeaders ETag).");
          err.permanent = true;
          reject(err);
          return;
        }
        resolve(etag.replace(/"/g, ""));
      } else {
        const err = new Error(`Storage refused a part (HTTP ${xhr.status}).`);
        err.permanent = xhr.status >= 400 && xhr.status < 500 && xhr.status !== 408 && xhr.status !== 429;
        reject(err);
      }
    };
    xhr.onerror = () => reject(new Error("The connection to storage failed."));
    xhr.ontimeout = () => reject(new Error("Storage took too long to answer."));
    xhr.send(blob);
  });
}

/** POST /files with XHR (progress), for servers without the multipart endpoints. */
function simpleUpload(file, folderId, onProgress) {
  return new Promise((resolve, reject) => {
    const params = new URLSearchParams({ name: file.name });
    if (folderId !== null && folderId !== undefined) params.set("folder_id", folderId);
    if (file.type) params.set("mime_type", file.type);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/files?${params}`);
    xhr.setRequestHeader("X-CSRF-Token", document.querySelector('meta[name="csrf-token"]').content);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded);
    xhr.onload = async () => {
      const resp = new Response(xhr.responseText, {
        status: xhr.status,
        headers: { "content-type": xhr.getResponseHeader("content-type") || "" },
      });
      if (xhr.status === 201) resolve(JSON.parse(xhr.responseText));
      else reject(await errorFromResponse(resp));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The server could not be reached."));
    xhr.send(file);
  });
}

/** One file's upload, with its row in the list. */
class UploadJob {
  constructor(file, queue) {
    this.file = file;
    this.queue = queue;
    this.hashed = 0;
    this.sent = new Map();
    this.state = "queued";
    this.bar = h("progress", { max: 100, value: 0, "aria-label": `Progress of ${file.name}` });
    this.status = h("span", { class: "upload-status" }, "Waiting");
    this.retry = h("button", { type: "button", class: "btn btn-small", hidden: true }, "Retry");
    this.retry.addEventListener("click", () => {
      this.retry.hidden = true;
      this.queue.enqueue(this);
    });
    this.row = h("li", { class: "upload-item", dataset: { name: file.name } },
      h("div", { class: "upload-line" },
        h("span", { class: "upload-name" }, file.name),
        h("span", { class: "upload-size" }, formatBytes(file.size))),
      this.bar,
      h("div", { class: "upload-line" }, this.status, this.retry));
  }

  get progress() {
    if (this.state === "done" || this.state === "stored") return 1;
    const size = this.file.size || 1;
    let sent = 0;
    for (const v of this.sent.values()) sent += v;
    return Math.min(1, HASH_WEIGHT * (this.hashed / size) + (1 - HASH_WEIGHT) * (sent / size));
  }

  show(text, state) {
    if (state) {
      this.state = state;
      this.row.dataset.state = state;
    }
    if (text) this.status.textContent = text;
    const pct = Math.floor(this.progress * 100);
    this.bar.value = pct;
    this.bar.setAttribute("aria-valuetext", `${pct}%`);
    this.queue.update();
  }

  async run() {
    this.sent.clear();
    this.show("Checking…", "hashing");
    const size = this.file.size;
    const partSize = FEATURES.uploads ? partSizeFor(size) : 0;
    const hashes = await hashFile(this.file, partSize, (done) => {
      this.hashed = done;
      this.show(`Checking… ${Math.floor((done / (size || 1)) * 100)}%`);
    });
    this.hashed = size;
    let doc;
    if (FEATURES.uploads) doc = await this.multipart(hashes.hex, hashes.parts, partSize);
    else {
      this.show("Uploading…", "uploading");
      doc = await simpleUpload(this.file, this.queue.folderId, (loaded) => {
        this.sent.set(1, loaded);
        this.show(`Uploading… ${Math.floor(this.progress * 100)}%`);
      });
    }
    this.document = doc;
    return doc;
  }

  async multipart(checksum, partChecksums, partSize) {
    const json = {
      filename: this.file.name,
      size_bytes: this.file.size,
      checksum_sha256: checksum,
      folder_id: this.queue.folderId,
      mime_type: this.file.type || undefined,
    };
    if (partChecksums) {
      // Each part's SHA-256 is signed into its URL: storage checks the bytes against it.
      json.part_size = partSize;
      json.part_checksums_sha256 = partChecksums;
    }
    const init = await api("POST", "uploads", { json });
    this.uploadId = init.upload_id;
    if (init.skip_upload) {
      const doc = await api("POST", `uploads/${encodeURIComponent(init.upload_id)}/complete`, { json: {} });
      this.show("Already stored — no upload needed", "stored");
      return doc;
    }
    this.show("Uploading…", "uploading");
    try {
      const parts = [...(init.parts || [])].sort((a, b) => a.part_number - b.part_number);
      const etags = await this.sendParts(parts, init.part_size);
      const doc = await api("POST", `uploads/${encodeURIComponent(init.upload_id)}/complete`, {
        json: { parts: etags },
      });
      return doc;
    } catch (err) {
      // Nothing is charged for an abandoned upload; tell the server to drop the parts now.
      api("DELETE", `uploads/${encodeURIComponent(init.upload_id)}`).catch(() => {});
      throw err;
    }
  }

  async sendParts(parts, partSize) {
    const results = [];
    let next = 0;
    const size = this.file.size;
    const sendOne = async (part) => {
      const start = (part.part_number - 1) * partSize;
      const blob = this.file.slice(start, Math.min(size, start + partSize));
      for (let attempt = 1; ; attempt++) {
        try {
          const etag = await putPart(part, blob, (loaded) => {
            this.sent.set(part.part_number, loaded);
            this.show(`Uploading… ${Math.floor(this.progress * 100)}%`);
          });
          this.sent.set(part.part_number, blob.size);
          this.show();
          return { part_number: part.part_number, etag };
        } catch (err) {
          this.sent.set(part.part_number, 0);
          if (err.permanent || attempt >= PART_ATTEMPTS) throw err;
          this.show(`Retrying part ${part.part_number}…`);
          await sleep(400 * 2 ** (attempt - 1));
        }
      }
    };
    const lane = async () => {
      while (next < parts.length) {
        const part = parts[next++];
        results.push(await sendOne(part));
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, parts.length) }, lane));
    return results.sort((a, b) => a.part_number - b.part_number);
  }
}

// A dropped folder goes many files to a request (POST /files/batch): up to this many files
// or bytes per request, under the server's default limits (1,000 files, 64 MiB).
const BATCH_FILES = 500;
const BATCH_BYTES = 16 * 1024 * 1024;

/** POST /files/batch with XHR (progress). The body is built by hand, not with FormData: each
 * part carries X-Docstore-Path, the exact path, which a form's filename cannot carry (a '"'
 * would arrive as %22). Resolves to the answer's items. */
function batchUpload(entries, folderId, onProgress) {
  const random = [...crypto.getRandomValues(new Uint8Array(16))];
  const boundary = `docstore-${random.map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  const body = [];
  for (const { file, path } of entries) {
    const shown = path.replace(/["\\\r\n]/g, "_");
    body.push(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${shown}"\r\n` +
        `X-Docstore-Path: ${encodeURIComponent(path)}\r\n` +
        `Content-Type: ${file.type || "application/octet-stream"}\r\n\r\n`,
      file,
      "\r\n",
    );
  }
  body.push(`--${boundary}--\r\n`);
  return new Promise((resolve, reject) => {
    const params = new URLSearchParams();
    if (folderId !== null && folderId !== undefined) params.set("folder_id", folderId);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/files/batch?${params}`);
    xhr.setRequestHeader("X-CSRF-Token", document.querySelector('meta[name="csrf-token"]').content);
    xhr.setRequestHeader("Content-Type", `multipart/form-data; boundary=${boundary}`);
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded / (ev.total || 1));
    xhr.onload = async () => {
      if (xhr.status === 200) {
        resolve(JSON.parse(xhr.responseText).items);
        return;
      }
      const resp = new Response(xhr.responseText, {
        status: xhr.status,
        headers: { "content-type": xhr.getResponseHeader("content-type") || "" },
      });
      reject(await errorFromResponse(resp));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The server could not be reached."));
    xhr.send(new Blob(body));
  });
}

/** Many files of a dropped folder in one request, with one row in the list. */
class BatchJob {
  constructor(entries, queue) {
    this.entries = entries;
    this.queue = queue;
    const total = entries.reduce((n, e) => n + e.file.size, 0);
    const top = entries[0].path.split("/")[0];
    const label = `${top}/ (${entries.length} file${entries.length === 1 ? "" : "s"})`;
    this.file = { name: label, size: total };
    this.sent = 0;
    this.state = "queued";
    this.bar = h("progress", { max: 100, value: 0, "aria-label": `Progress of ${label}` });
    this.status = h("span", { class: "upload-status" }, "Waiting");
    this.retry = h("button", { type: "button", class: "btn btn-small", hidden: true }, "Retry");
    this.retry.addEventListener("click", () => {
      this.retry.hidden = true;
      this.queue.enqueue(this);
    });
    this.row = h("li", { class: "upload-item", dataset: { name: label } },
      h("div", { class: "upload-line" },
        h("span", { class: "upload-name" }, label),
        h("span", { class: "upload-size" }, formatBytes(total))),
      this.bar,
      h("div", { class: "upload-line" }, this.status, this.retry));
  }

  get progress() {
    return this.state === "done" ? 1 : this.sent;
  }

  show(text, state) {
    UploadJob.prototype.show.call(this, text, state);
  }

  async run() {
    this.show("Uploading…", "uploading");
    const items = await batchUpload(this.entries, this.queue.folderId, (fraction) => {
      this.sent = fraction;
      this.show(`Uploading… ${Math.floor(fraction * 100)}%`);
    });
    const failed = items.filter((i) => i.status !== 201);
    if (failed.length) {
      // The files that went in stay; only the failed ones are sent again on retry.
      const paths = new Set(failed.map((i) => i.path));
      this.entries = this.entries.filter((e) => paths.has(e.path));
      const why = failed.slice(0, 3).map((i) => `${i.path}: ${i.error ? i.error.detail : i.status}`);
      throw new Error(`${failed.length} of ${items.length} not uploaded — ${why.join("; ")}`);
    }
    this.document = items.length ? items[items.length - 1].document : null;
  }
}

/** The upload panel: one row per file, an overall bar, files one after another. */
export class UploadQueue {
  constructor({ folderId, list, overall, overallText, panel, onUploaded }) {
    this.folderId = folderId;
    this.list = list;
    this.overall = overall;
    this.overallText = overallText;
    this.panel = panel;
    this.onUploaded = onUploaded;
    this.jobs = [];
    this.pending = [];
    this.running = false;
  }

  add(files) {
    const fresh = [...files].map((f) => new UploadJob(f, this));
    if (!fresh.length) return;
    if (this.jobs.length && this.jobs.every((j) => ["done", "stored", "failed"].includes(j.state))) {
      this.jobs = [];
      this.list.replaceChildren();
    }
    for (const job of fresh) {
      this.jobs.push(job);
      this.list.append(job.row);
    }
    this.panel.hidden = false;
    for (const job of fresh) this.enqueue(job);
  }

  /** The files of dropped folders ({file, path}), in batches of many files per request. */
  addTree(entries) {
    const jobs = [];
    let group = [];
    let bytes = 0;
    for (const entry of entries) {
      if (group.length && (group.length >= BATCH_FILES || bytes + entry.file.size > BATCH_BYTES)) {
        jobs.push(new BatchJob(group, this));
        group = [];
        bytes = 0;
      }
      group.push(entry);
      bytes += entry.file.size;
    }
    if (group.length) jobs.push(new BatchJob(group, this));
    if (!jobs.length) return;
    if (this.jobs.length && this.jobs.every((j) => ["done", "stored", "failed"].includes(j.state))) {
      this.jobs = [];
      this.list.replaceChildren();
    }
    for (const job of jobs) {
      this.jobs.push(job);
      this.list.append(job.row);
    }
    this.panel.hidden = false;
    for (const job of jobs) this.enqueue(job);
  }

  enqueue(job) {
    job.show("Waiting", "queued");
    this.pending.push(job);
    if (!this.running) this.drain();
  }

  async drain() {
    this.running = true;
    while (this.pending.length) {
      const job = this.pending.shift();
      try {
        await job.run();
        if (job.state !== "stored") job.show("Done", "done");
        else job.show();
        if (this.onUploaded) this.onUploaded(job.document);
      } catch (err) {
        job.show(`Failed: ${err.message}`, "failed");
        job.retry.hidden = false;
      }
    }
    this.running = false;
    this.update();
    refreshQuota();
  }

  update() {
    let total = 0;
    let done = 0;
    for (const job of this.jobs) {
      const weight = Math.max(job.file.size, 1);
      total += weight;
      done += weight * job.progress;
    }
    const pct = total ? Math.floor((done / total) * 100) : 0;
    this.overall.value = pct;
    this.overall.setAttribute("aria-valuetext", `${pct}%`);
    const finished = this.jobs.filter((j) => ["done", "stored"].includes(j.state)).length;
    const failed = this.jobs.filter((j) => j.state === "failed").length;
    let text = `${finished} of ${this.jobs.length} files · ${pct}%`;
    if (failed) text += ` · ${failed} failed`;
    this.overallText.textContent = text;
    this.panel.dataset.complete = String(!this.running && this.jobs.every((j) => ["done", "stored"].includes(j.state)));
  }
}
