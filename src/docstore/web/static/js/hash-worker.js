// Web Worker: SHA-256 of a File read slice by slice, so the file is never held in memory.
import { Sha256 } from "./sha256.js";

const CHUNK = 4 * 1024 * 1024;

self.onmessage = async (event) => {
  const { id, file } = event.data;
  const hash = new Sha256();
  let offset = 0;
  try {
    while (offset < file.size) {
      const bytes = new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer());
      hash.update(bytes);
      offset += bytes.length;
      self.postMessage({ id, type: "progress", done: offset });
    }
    self.postMessage({ id, type: "done", hex: hash.hex() });
  } catch (err) {
    self.postMessage({ id, type: "error", message: String(err && err.message ? err.message : err) });
  }
};
