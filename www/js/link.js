// Share by link: the support set (exportSet's JSON) deflated into the address's fragment, so a
// link reproduces the drawings on another device without any server seeing them (a fragment is
// never sent in a request).

const PREFIX = '#set=';

function toBase64Url(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function fromBase64Url(text) {
  const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function pipe(bytes, stream) {
  const output = new Blob([bytes]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(output).arrayBuffer());
}

/** The address of this page carrying `json` (a support set) in its fragment. */
export async function linkFor(json) {
  const packed = await pipe(new TextEncoder().encode(json), new CompressionStream('deflate-raw'));
  const url = new URL(location.href);
  url.hash = `${PREFIX.slice(1)}${toBase64Url(packed)}`;
  return url.href;
}

/** The support set JSON a fragment carries, or null when it carries none. Throws when damaged. */
export async function setFromFragment(hash) {
  if (!hash.startsWith(PREFIX)) return null;
  let bytes;
  try {
    bytes = await pipe(fromBase64Url(hash.slice(PREFIX.length)), new DecompressionStream('deflate-raw'));
  } catch {
    throw new Error('the link is damaged (its drawings cannot be unpacked)');
  }
  return new TextDecoder().decode(bytes);
}
