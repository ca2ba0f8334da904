// Web Worker: SHA-256 of a File read slice by slice, so the file is never held in memory,
// and the SHA-256 of each upload part (WebCrypto, base64): the server signs each into its
// part's URL, storage refuses a part whose bytes differ, and the server reads nothing back.
import { Sha256 } from "./sha256.js";

const CHUNK = 4 * 1024 * 1024;

function base64(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text);
}

self.onmessage = async (event) => {
  const { id, file, partSize } = event.data;
  const hash = new Sha256();
  // crypto.subtle exists only in secure contexts (HTTPS, localhost): without it the upload
  // declares no part checksums and the server hashes the object itself.
  const subtle = partSize && self.crypto && self.crypto.subtle;
  const parts = subtle ? [] : null;
  const step = subtle ? partSize : CHUNK;
  let offset = 0;
  try {
    do {
      const part = new Uint8Array(await file.slice(offset, offset + step).arrayBuffer());
      for (let at = 0; at < part.length; at += CHUNK) {
        hash.update(part.subarray(at, at + CHUNK));
        self.postMessage({ id, type: "progress", done: offset + Math.min(part.length, at + CHUNK) });
      }
      if (parts) parts.push(base64(await subtle.digest("SHA-256", part)));
      offset += part.length;
    } while (offset < file.size);
    self.postMessage({ id, type: "done", hex: hash.hex(), parts });
  } catch (err) {
    self.postMessage({ id, type: "error", message: String(err && err.message ? err.message : err) });
  }
};
