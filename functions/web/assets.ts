/**
 * The interface's only assets, served from the registry's own host (`/-/style.css`, `/-/app.js`):
 * registries run in closed networks, and the Content-Security-Policy allows nothing else. The
 * script only enhances: copy buttons and confirmations; every page reads and works without it.
 */

/** Stylesheet: system fonts, contrast ≥ 4.5:1 (WCAG 2.1 AA), visible focus. */
const STYLE = `
:root{--fg:#1b1f24;--muted:#4d5661;--line:#d5dae0;--accent:#0b5cad;--bg:#fff;--soft:#f3f5f7;--bad:#a1161b}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
a:focus,button:focus,input:focus,select:focus,textarea:focus,summary:focus{outline:3px solid #f0a500;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:#fff;padding:4px 8px;z-index:2}
header{background:#12263f;color:#fff}
header nav{display:flex;gap:18px;align-items:center;max-width:1200px;margin:0 auto;padding:10px 20px;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}header a:hover{text-decoration:underline}
.brand{font-weight:700;font-size:18px}
.who{margin-left:auto;display:flex;gap:10px;align-items:center}
.who form{margin:0}
header button{background:transparent;color:#fff;border:1px solid #9fb3c8;border-radius:4px;padding:3px 10px;cursor:pointer;font:inherit}
main{max-width:1200px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:24px;margin:8px 0 6px;word-break:break-all}h2{font-size:18px;margin:26px 0 8px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;white-space:nowrap}
code,.mono{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.muted{color:var(--muted)}
.badge{display:inline-block;border:1px solid var(--line);border-radius:10px;padding:0 8px;font-size:13px;color:var(--muted)}
.badge.public{border-color:#1f7a3a;color:#1a6631}
.pull{display:flex;gap:8px;align-items:center;background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:4px 8px;margin:2px 0}
.pull code{flex:1}
button,.button{background:var(--accent);color:#fff;border:0;border-radius:4px;padding:5px 12px;font:inherit;cursor:pointer}
button.small{padding:2px 8px;font-size:13px}
button.danger{background:var(--bad)}
form.inline{display:inline;margin:0}
.search{display:flex;gap:8px;flex-wrap:wrap;align-items:end;margin:10px 0}
.search input{min-width:260px}
input,select,textarea{font:inherit;padding:5px 8px;border:1px solid #8a949e;border-radius:4px;background:#fff;color:var(--fg)}
label{display:block;font-weight:600;margin:6px 0 2px}
.field{margin:8px 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:8px 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
.pages{display:flex;gap:14px;margin:12px 0}
.note{background:#fff8e1;border:1px solid #e0c46c;padding:8px 12px;border-radius:4px}
.error{background:#fdecea;border:1px solid #d9534f;padding:8px 12px;border-radius:4px}
.panel{border:1px solid var(--line);border-radius:6px;padding:8px 16px;margin:12px 0}
ul.plain{margin:0;padding-left:18px}
svg text{font:12px system-ui,sans-serif;fill:#1b1f24}
`;

/** Copy buttons (shown only when the script runs) and confirmations before deletes. */
const SCRIPT = `'use strict';
for (const button of document.querySelectorAll('button[data-copy]')) {
  button.hidden = false;
  button.addEventListener('click', async () => {
    const source = document.getElementById(button.dataset.copy);
    const text = source ? source.textContent : '';
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(source);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand('copy');
    }
    const status = document.getElementById('status');
    if (status) status.textContent = 'Copied: ' + text;
    button.textContent = 'Copied';
    setTimeout(() => (button.textContent = 'Copy'), 2000);
  });
}
for (const form of document.querySelectorAll('form[data-confirm]')) {
  form.addEventListener('submit', (event) => {
    if (!confirm(form.dataset.confirm)) event.preventDefault();
  });
}
`;

/** The assets by path, with their media types. */
export const ASSETS: Record<string, { type: string; body: Buffer }> = {
  '/-/style.css': { type: 'text/css; charset=utf-8', body: Buffer.from(STYLE) },
  '/-/app.js': { type: 'text/javascript; charset=utf-8', body: Buffer.from(SCRIPT) },
};
