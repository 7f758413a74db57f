/** The web interface's escaping and chart: pusher-chosen text never becomes markup. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { storageChart } from '../../functions/web/chart.js';
import { formatBytes } from '../../functions/web/format.js';
import { escape, html, pathOf } from '../../functions/web/html.js';

test('every interpolated value is escaped, markup made by html is not, lists and nothing render', () => {
  const name = `"><img src=x onerror=alert(1)>&'`;
  assert.equal(html`<a title="${name}">${name}</a>`.text, '<a title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&#39;">&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&#39;</a>');
  assert.equal(html`<ul>${['<b>', html`<li>ok</li>`]}</ul>`.text, '<ul>&lt;b&gt;<li>ok</li></ul>');
  assert.equal(html`${undefined}${null}${false}${0}`.text, '0');
});

test('escaped text contains no character that could start a tag or end an attribute', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (text) => {
      const out = escape(text);
      assert.doesNotMatch(out, /[<>"']/);
      assert.equal(out.replace(/&(lt|gt|quot|#39|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', '#39': "'", amp: '&' })[e]!), text);
    }),
  );
});

test('paths keep the slashes of repository names and encode the rest', () => {
  assert.equal(pathOf('/r', 'team/app'), '/r/team/app');
  assert.equal(pathOf('/r', 'a b?#'), '/r/a%20b%3F%23');
});

test('the storage chart escapes repository names and draws the largest first', () => {
  const svg = storageChart([
    { name: 'small', bytes: 1000 },
    { name: '<script>x</script>', bytes: 5_000_000 },
  ]).text;
  assert.ok(!svg.includes('<script>'));
  assert.ok(svg.indexOf('&lt;script&gt;') < svg.indexOf('>small<'));
  assert.match(svg, /5\.00 MB/);
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(1_234_567), '1.23 MB');
});
