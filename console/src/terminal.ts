import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { api, enc } from './api.js';

let patched = false;
/**
 * xterm.js renders with <style> elements it creates. Kiln's CSP admits only styles carrying
 * the page's nonce (api/console.ts), so elements made here get it; an injected <style> would not.
 */
function giveStylesTheNonce(): void {
  if (patched) return;
  patched = true;
  const nonce = document.querySelector<HTMLMetaElement>('meta[name="kiln-style-nonce"]')?.content ?? '';
  const proto = Document.prototype as unknown as { createElement: (this: Document, tag: string, options?: ElementCreationOptions) => HTMLElement };
  const create = proto.createElement;
  proto.createElement = function (this: Document, tag: string, options?: ElementCreationOptions): HTMLElement {
    const el = create.call(this, tag, options);
    if (tag.toLowerCase() === 'style') el.setAttribute('nonce', nonce);
    return el;
  };
}

/**
 * Opens the session's terminal: a one-use ticket from the API (asked with the key in a header),
 * offered as a WebSocket subprotocol, never the key in a URL. Binary frames carry the bytes both
 * ways; text frames are JSON control messages. Returns a function that closes it.
 */
export async function openTerminal(host: HTMLElement, id: string, status: (s: string) => void): Promise<() => void> {
  giveStylesTheNonce();
  const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 5000, theme: { background: '#111418', foreground: '#e6e6e6' } });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();
  const { ticket } = await api<{ ticket: string }>('POST', `/api/v1/sessions/${enc(id)}/pty-ticket`);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/api/v1/sessions/${enc(id)}/pty?cols=${term.cols}&rows=${term.rows}`, ['kiln.pty', `kiln.ticket.${ticket}`]);
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  ws.onopen = () => {
    status('connected');
    term.focus();
  };
  ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
    if (typeof m.data !== 'string') {
      term.write(new Uint8Array(m.data));
      return;
    }
    try {
      const msg = JSON.parse(m.data) as { type?: string; code?: number | string; message?: string };
      if (msg.type === 'exit') status(`exited (${String(msg.code)})`);
      else if (msg.type === 'error') status(`error: ${String(msg.code)} ${msg.message ?? ''}`);
    } catch {
      // not a control message: ignored
    }
  };
  ws.onclose = (e) => status(e.code === 1000 ? 'closed' : `disconnected (${e.code})`);
  const input = term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
  });
  const onResize = (): void => {
    fit.fit();
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
  };
  addEventListener('resize', onResize);
  return () => {
    removeEventListener('resize', onResize);
    input.dispose();
    ws.close();
    term.dispose();
  };
}
