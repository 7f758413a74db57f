/**
 * The pages of the web interface as HTML templates. Every value that reaches a page from a
 * pusher or a visitor (names, tags, descriptions, labels, annotations, form input) goes through
 * {@link html}'s escaping, the SVG chart (chart.ts) included.
 */
import { ROLES, type Account } from '../auth/accounts.js';
import type { DiskUsage } from '../core/repositories.js';
import { ruleSummary } from '../core/retention.js';
import type { ImmutableRule, RepositoryInfo, RetentionRule } from '../storage/ports.js';
import { storageChart } from './chart.js';
import { formatBytes, formatTime, shortDigest } from './format.js';
import { html, pathOf, type Html, type Part } from './html.js';
import { SORTS, type ImageView, type ListedRepository, type Paged, type ShownDescriptor, type Sort, type TagRow } from './views.js';

/** Who is looking, and what every page needs to know about it. */
export interface Viewer {
  /** The signed-in user's name; undefined: anonymous. */
  user?: string;
  /** May administer the registry (the admin page, visibility, descriptions). */
  admin: boolean;
  /** Sign-in exists (BERTH_AUTH=required); otherwise everyone may do everything. */
  signIn: boolean;
  /** The CSRF token every form carries. */
  csrf: string;
  /** The registry's host as clients name it (`registry.example.com`), for pull commands. */
  host: string;
}

const SORT_NAMES: Record<Sort, string> = { match: 'Best match', name: 'Name', pushed: 'Last push', size: 'Size' };

/** The frame of every page: navigation, sign-in state, the live region copy buttons report to. */
export function layout(viewer: Viewer, title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Berth</title><link rel="stylesheet" href="/-/style.css"><script src="/-/app.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>
<header><nav aria-label="Main"><a class="brand" href="/">Berth</a><a href="/">Repositories</a>${viewer.admin && html`<a href="/admin">Administration</a>`}
<span class="who">${who(viewer)}</span></nav></header>
<main id="main">${body}<p id="status" class="muted" role="status" aria-live="polite"></p></main></body></html>`;
}

function who(viewer: Viewer): Part {
  if (!viewer.signIn) return html`<span>Sign-in is off: everyone administers</span>`;
  if (!viewer.user) return html`<a href="/login">Sign in</a>`;
  return html`<span>Signed in as <strong>${viewer.user}</strong></span><form method="post" action="/logout">${csrfField(viewer)}<button type="submit">Sign out</button></form>`;
}

function csrfField(viewer: Viewer): Html {
  return html`<input type="hidden" name="csrf" value="${viewer.csrf}">`;
}

/** The repository list: search, sort, paging. */
export function repositoriesPage(viewer: Viewer, term: string, sort: Sort, list: Paged<ListedRepository>): Html {
  const query = (page: number) => `/?${new URLSearchParams({ q: term, sort, page: String(page) })}`;
  const rows = list.items.map(
    (r) => html`<tr><td><a href="${pathOf('/r', r.name)}">${r.name}</a></td><td>${r.description ?? ''}</td><td>${visibilityBadge(r.visibility)}</td>
<td class="num">${r.tags}</td><td class="num">${formatBytes(r.bytes)}</td><td>${formatTime(r.pushedAt)}</td></tr>`,
  );
  return layout(
    viewer,
    'Repositories',
    html`<h1>Repositories</h1>
${!viewer.user && viewer.signIn && html`<p class="muted">Showing public repositories. <a href="/login">Sign in</a> to see the ones your account may pull.</p>`}
<form class="search" role="search" method="get" action="/">
<div><label for="q">Search repositories</label><input id="q" type="search" name="q" value="${term}" placeholder="name or description"></div>
<div><label for="sort">Sort by</label><select id="sort" name="sort">${SORTS.map((s) => html`<option value="${s}"${s === sort && html` selected`}>${SORT_NAMES[s]}</option>`)}</select></div>
<button type="submit">Search</button></form>
<p>${list.total} ${list.total === 1 ? 'repository' : 'repositories'}${term && html` matching “${term}”`}</p>
${list.total > 0 && html`<table><caption class="skip">Repositories</caption><thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col">Visibility</th><th scope="col" class="num">Tags</th><th scope="col" class="num">Size</th><th scope="col">Last push</th></tr></thead><tbody>${rows}</tbody></table>`}
${pager(list, query)}`,
  );
}

function pager(list: Paged<unknown>, link: (page: number) => string): Part {
  if (list.pages <= 1) return undefined;
  return html`<nav class="pages" aria-label="Pages">${list.page > 1 && html`<a href="${link(list.page - 1)}" rel="prev">Previous</a>`}<span>Page ${list.page} of ${list.pages}</span>${list.page < list.pages && html`<a href="${link(list.page + 1)}" rel="next">Next</a>`}</nav>`;
}

function visibilityBadge(visibility: string): Html {
  return html`<span class="badge ${visibility === 'public' ? 'public' : ''}">${visibility}</span>`;
}

/** The pull command of `name:tag` (or `name@digest`) with a copy button; `id` names the command for the button. */
function pullLine(viewer: Viewer, id: string, reference: string): Html {
  return html`<div class="pull"><code id="${id}">docker pull ${viewer.host}/${reference}</code><button type="button" class="small" data-copy="${id}" hidden aria-label="Copy pull command for ${reference}">Copy</button></div>`;
}

/** What a repository page may offer its viewer. */
export interface RepositoryRights {
  /** Delete tags and manifests (the `delete` action on the repository). */
  delete: boolean;
}

/** A repository: description, visibility, tags with sizes and platforms, pull commands; settings for admins. */
export function repositoryPage(viewer: Viewer, info: RepositoryInfo, tags: Paged<TagRow>, rights: RepositoryRights, notice?: string): Html {
  const base = pathOf('/r', info.name);
  const rows = tags.items.map(
    (t, i) => html`<tr><th scope="row"><a href="${`${base}/-/manifests/${encodeURIComponent(t.tag)}`}">${t.tag}</a></th>
<td><code title="${t.digest}">${shortDigest(t.digest)}</code></td><td class="num">${formatBytes(t.size)}</td>
<td>${t.platforms.length > 0 ? html`${t.platforms.join(', ')}${t.morePlatforms > 0 && ` and ${t.morePlatforms} more`}` : html`<span class="muted">single platform</span>`}</td>
<td>${formatTime(t.created)}</td><td>${formatTime(t.pushedAt)}</td><td>${pullLine(viewer, `pull-${i}`, `${info.name}:${t.tag}`)}</td>
${rights.delete && html`<td>${deleteForm(viewer, info.name, t.tag, `Delete tag ${t.tag}`, `Delete tag ${t.tag} of ${info.name}?`)}</td>`}</tr>`,
  );
  return layout(
    viewer,
    info.name,
    html`<h1>${info.name}</h1>
<p>${visibilityBadge(info.visibility)} ${info.description ? html`<span>${info.description}</span>` : html`<span class="muted">No description</span>`}</p>
${notice && html`<p class="note" role="status">${notice}</p>`}
<h2>Tags</h2>
${tags.total === 0 ? html`<p>No tags.</p>` : html`<table><thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col">Platforms</th><th scope="col">Created</th><th scope="col">Pushed</th><th scope="col">Pull</th>${rights.delete && html`<th scope="col"><span class="skip">Actions</span>Delete</th>`}</tr></thead><tbody>${rows}</tbody></table>`}
${pager(tags, (page) => `${base}?page=${page}`)}
${viewer.admin && settingsForm(viewer, info)}`,
  );
}

function deleteForm(viewer: Viewer, name: string, reference: string, label: string, question: string): Html {
  return html`<form class="inline" method="post" action="${pathOf('/r', name)}/-/delete" data-confirm="${question}">${csrfField(viewer)}<input type="hidden" name="reference" value="${reference}"><button type="submit" class="small danger" aria-label="${label}">Delete</button></form>`;
}

function settingsForm(viewer: Viewer, info: RepositoryInfo): Html {
  return html`<h2>Settings</h2><form class="panel" method="post" action="${pathOf('/r', info.name)}/-/settings">${csrfField(viewer)}
<div class="field"><label for="visibility">Visibility</label><select id="visibility" name="visibility">${['private', 'public'].map((v) => html`<option value="${v}"${v === info.visibility && html` selected`}>${v}</option>`)}</select></div>
<div class="field"><label for="description">Description</label><textarea id="description" name="description" rows="2" cols="60" maxlength="300">${info.description ?? ''}</textarea></div>
<button type="submit">Save settings</button></form>`;
}

/** An image manifest or index: layers, config, platform children, annotations, referrers. */
export function imagePage(
  viewer: Viewer,
  name: string,
  reference: string,
  image: ImageView,
  { referrers, count }: { referrers: ShownDescriptor[]; count: number },
  rights: RepositoryRights,
): Html {
  const base = pathOf('/r', name);
  const link = (digest: string) => `${base}/-/manifests/${encodeURIComponent(digest)}`;
  const facts = image.facts;
  const shownReference = reference.includes(':') ? `${name}@${reference}` : `${name}:${reference}`;
  return layout(
    viewer,
    shownReference,
    html`<p><a href="${base}">${name}</a></p><h1>${shownReference}</h1>
${pullLine(viewer, 'pull-image', shownReference)}
<dl class="facts"><dt>Digest</dt><dd><code>${image.digest}</code></dd><dt>Media type</dt><dd><code>${image.mediaType}</code></dd>
${image.artifactType && html`<dt>Artifact type</dt><dd><code>${image.artifactType}</code></dd>`}
<dt>${image.childCount > 0 ? 'Index size' : 'Size'}</dt><dd>${formatBytes(image.size)}</dd>
${image.subject && html`<dt>Subject</dt><dd><a href="${link(image.subject)}"><code>${image.subject}</code></a></dd>`}</dl>
${image.childCount > 0 && html`<h2>Platforms</h2><table><thead><tr><th scope="col">Platform</th><th scope="col">Digest</th><th scope="col">Media type</th><th scope="col" class="num">Manifest size</th></tr></thead><tbody>
${image.children.map((c) => html`<tr><td>${c.platform ?? html`<span class="muted">${c.annotations.find(([k]) => k === 'vnd.docker.reference.type')?.[1] ?? 'no platform'}</span>`}</td><td><a href="${link(c.digest)}"><code>${c.digest}</code></a></td><td><code>${c.mediaType}</code></td><td class="num">${formatBytes(c.size)}</td></tr>`)}</tbody></table>${more(image.childCount, image.children.length, 'manifests')}`}
${facts && html`<h2>Config</h2><dl class="facts">
<dt>Created</dt><dd>${formatTime(facts.created)}</dd>
${facts.platform && html`<dt>Platform</dt><dd>${facts.platform}</dd>`}
<dt>Entrypoint</dt><dd>${commandLine(facts.entrypoint)}</dd>
<dt>Command</dt><dd>${commandLine(facts.command)}</dd>
${facts.workingDir && html`<dt>Working directory</dt><dd><code>${facts.workingDir}</code></dd>`}
${facts.user && html`<dt>User</dt><dd><code>${facts.user}</code></dd>`}
<dt>Exposed ports</dt><dd>${facts.exposedPorts.join(', ') || html`<span class="muted">none</span>`}</dd>
<dt>Environment</dt><dd>${facts.environment.length > 0 ? html`<ul class="plain">${facts.environment.map((e) => html`<li><code>${e}</code></li>`)}</ul>` : html`<span class="muted">none</span>`}</dd></dl>
${keyValues('Labels', facts.labels)}`}
${image.configDescriptor && !facts && html`<h2>Config</h2><p class="muted">Config <code>${image.configDescriptor.digest}</code> (${image.configDescriptor.mediaType}) is no image config the interface reads.</p>`}
${image.layerCount > 0 && html`<h2>Layers</h2><table><thead><tr><th scope="col" class="num">#</th><th scope="col">Digest</th><th scope="col">Media type</th><th scope="col" class="num">Size</th></tr></thead><tbody>
${image.layers.map((l, i) => html`<tr><td class="num">${i + 1}</td><td><code>${l.digest}</code></td><td><code>${l.mediaType}</code></td><td class="num">${formatBytes(l.size)}</td></tr>`)}</tbody></table>${more(image.layerCount, image.layers.length, 'layers')}`}
${keyValues('Annotations', image.annotations)}
<h2>Referrers</h2>
${count === 0 ? html`<p class="muted">No signatures, SBOMs or other artifacts refer to this manifest.</p>` : html`<table><thead><tr><th scope="col">Artifact type</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col">Annotations</th></tr></thead><tbody>
${referrers.map((r) => html`<tr><td><code>${r.artifactType ?? r.mediaType}</code></td><td><a href="${link(r.digest)}"><code>${r.digest}</code></a></td><td class="num">${formatBytes(r.size)}</td><td>${r.annotations.map(([k, v]) => html`<div><code>${k}</code>: ${v}</div>`)}</td></tr>`)}</tbody></table>${more(count, referrers.length, 'referrers')}`}
${rights.delete && html`<h2>Delete</h2><p>Deleting the manifest deletes every tag that names it.</p>${deleteForm(viewer, name, image.digest, `Delete manifest ${image.digest}`, `Delete manifest ${image.digest} and its tags?`)}`}`,
  );
}

/** A note under a table cut at its row limit. */
function more(all: number, shown: number, what: string): Part {
  return all > shown && html`<p class="muted">The first ${shown} of ${all} ${what}.</p>`;
}

function commandLine(parts: string[]): Part {
  return parts.length > 0 ? html`<code>${JSON.stringify(parts)}</code>` : html`<span class="muted">none</span>`;
}

function keyValues(title: string, pairs: [string, string][]): Part {
  if (pairs.length === 0) return undefined;
  return html`<h2>${title}</h2><table><thead><tr><th scope="col">Key</th><th scope="col">Value</th></tr></thead><tbody>${pairs.map(([k, v]) => html`<tr><td><code>${k}</code></td><td>${v}</td></tr>`)}</tbody></table>`;
}

/** The sign-in form, with the reason the last attempt failed. */
export function loginPage(viewer: Viewer, error?: string, name = ''): Html {
  return layout(
    viewer,
    'Sign in',
    html`<h1>Sign in</h1>${error && html`<p class="error" role="alert">${error}</p>`}
<form class="panel" method="post" action="/login">${csrfField(viewer)}
<div class="field"><label for="name">User name</label><input id="name" name="name" autocomplete="username" required value="${name}"></div>
<div class="field"><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required></div>
<button type="submit">Sign in</button></form>
<p class="muted">Robot accounts cannot sign in here; they log in with their token from docker or CI.</p>`,
  );
}

/** What the admin page shows. */
export interface AdminData {
  usage: DiskUsage;
  accounts: Account[];
  rules: { immutable: ImmutableRule[]; retention: RetentionRule[] };
  /** A robot just created, with its token: shown this once. */
  created?: { name: string; token: string };
  notice?: string;
}

/** Administration: storage chart, accounts (add a user or robot, remove), immutability and retention rules (add, remove). */
export function adminPage(viewer: Viewer, data: AdminData): Html {
  const { usage, accounts, rules } = data;
  const roleSelect = (id: string) => html`<select id="${id}" name="role">${ROLES.map((r) => html`<option value="${r}">${r}</option>`)}</select>`;
  return layout(
    viewer,
    'Administration',
    html`<h1>Administration</h1>
${data.notice && html`<p class="note" role="status">${data.notice}</p>`}
${data.created && html`<div class="note" role="status"><p>Robot <strong>${data.created.name}</strong> created. Its token is shown this once: keep it now.</p>${html`<div class="pull"><code id="robot-token">${data.created.token}</code><button type="button" class="small" data-copy="robot-token" hidden>Copy</button></div>`}</div>`}
<h2>Storage</h2>
<p>${formatBytes(usage.total)} in ${usage.blobs} blobs (each once); ${formatBytes(usage.unlinked)} no repository links any more (freed by the next garbage collection).</p>
${storageChart(usage.repositories)}
<h2>Accounts</h2>
<table><thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Role</th><th scope="col">Repositories</th><th scope="col">Created</th><th scope="col">Remove</th></tr></thead><tbody>
${accounts.map((a) => html`<tr><td>${a.name}</td><td>${a.kind}</td><td>${a.role}</td><td>${a.repositories.length > 0 ? a.repositories.join(', ') : 'all'}</td><td>${formatTime(a.createdAt)}</td>
<td>${a.name === viewer.user ? html`<span class="muted">you</span>` : removeForm(viewer, '/admin/accounts/remove', 'name', a.name, `Remove ${a.name}`)}</td></tr>`)}</tbody></table>
<h2>Add a robot</h2>
<form class="panel" method="post" action="/admin/robots">${csrfField(viewer)}
<div class="field"><label for="robot-name">Name (becomes robot$name)</label><input id="robot-name" name="name" required pattern="[a-z0-9][a-z0-9._\\-]{0,63}"></div>
<div class="field"><label for="robot-role">Role</label>${roleSelect('robot-role')}</div>
<div class="field"><label for="robot-repos">Repository patterns (space-separated; empty: all)</label><input id="robot-repos" name="repositories" placeholder="team/*"></div>
<button type="submit">Create robot</button></form>
<h2>Add a user</h2>
<form class="panel" method="post" action="/admin/users">${csrfField(viewer)}
<div class="field"><label for="user-name">Name</label><input id="user-name" name="name" required autocomplete="off" pattern="[a-z0-9][a-z0-9._\\-]{0,63}"></div>
<div class="field"><label for="user-password">Password</label><input id="user-password" name="password" type="password" required minlength="8" autocomplete="new-password"></div>
<div class="field"><label for="user-role">Role</label>${roleSelect('user-role')}</div>
<div class="field"><label for="user-repos">Repository patterns (space-separated; empty: all)</label><input id="user-repos" name="repositories" placeholder="team/*"></div>
<button type="submit">Add user</button></form>
<h2>Immutable tags</h2>
${rules.immutable.length === 0 ? html`<p class="muted">No rules.</p>` : html`<table><thead><tr><th scope="col">Repositories</th><th scope="col">Except tags</th><th scope="col">Turn off</th></tr></thead><tbody>${rules.immutable.map((r) => html`<tr><td><code>${r.pattern}</code></td><td>${r.except.join(', ') || html`<span class="muted">none</span>`}</td><td>${removeForm(viewer, '/admin/immutable/remove', 'pattern', r.pattern, `Turn off immutable tags of ${r.pattern}`)}</td></tr>`)}</tbody></table>`}
<form class="panel" method="post" action="/admin/immutable">${csrfField(viewer)}
<div class="field"><label for="immutable-pattern">Repository pattern</label><input id="immutable-pattern" name="pattern" required placeholder="team/*"></div>
<div class="field"><label for="immutable-except">Except tags (space-separated patterns)</label><input id="immutable-except" name="except" placeholder="latest dev-*"></div>
<button type="submit">Make tags immutable</button></form>
<h2>Retention rules</h2>
${rules.retention.length === 0 ? html`<p class="muted">No rules.</p>` : html`<table><thead><tr><th scope="col">Id</th><th scope="col">Repositories</th><th scope="col">Rule</th><th scope="col">Remove</th></tr></thead><tbody>${rules.retention.map((r) => html`<tr><td><code>${r.id}</code></td><td><code>${r.pattern}</code></td><td>${ruleSummary(r)}</td><td>${removeForm(viewer, '/admin/retention/remove', 'id', r.id, `Remove retention rule ${r.id}`)}</td></tr>`)}</tbody></table>`}
<form class="panel" method="post" action="/admin/retention">${csrfField(viewer)}
<div class="field"><label for="retention-pattern">Repository pattern</label><input id="retention-pattern" name="pattern" required placeholder="team/*"></div>
<div class="field"><label for="retention-kind">Rule</label><select id="retention-kind" name="kind"><option value="keepLast">keep the last n tags</option><option value="expireDays">delete tags n days after their push</option><option value="untaggedDays">untagged manifests go after n days</option></select></div>
<div class="field"><label for="retention-value">n</label><input id="retention-value" name="value" required inputmode="numeric" pattern="[0-9]{1,6}"></div>
<div class="field"><label for="retention-tags">Tags (pattern; empty: all)</label><input id="retention-tags" name="tags" placeholder="v*"></div>
<button type="submit">Add retention rule</button></form>
<p class="muted">Immutable tags are never expired; the daily garbage collection applies the retention rules (<code>npx berth retention run</code> at once).</p>`,
  );
}

function removeForm(viewer: Viewer, action: string, name: string, value: string, label: string): Html {
  return html`<form class="inline" method="post" action="${action}" data-confirm="${`${label}?`}">${csrfField(viewer)}<input type="hidden" name="${name}" value="${value}"><button type="submit" class="small danger" aria-label="${label}">Remove</button></form>`;
}

/** A failure as a page: what went wrong, in one line. */
export function errorPage(viewer: Viewer, status: number, message: string): Html {
  const title = status === 404 ? 'Not found' : status === 403 ? 'Not allowed' : status === 429 ? 'Too many requests' : status >= 500 ? 'Something went wrong' : 'Request refused';
  return layout(viewer, title, html`<h1>${title}</h1><p class="error" role="alert">${message}</p><p><a href="/">Back to the repositories</a></p>`);
}
