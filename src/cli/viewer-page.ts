// The viewer's page, style and script, kept as text so the package ships them without a build
// step or a file lookup (whose path differs between the sources, dist/esm and dist/cjs).

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>event-history viewer</title>
<link rel="stylesheet" href="/viewer.css">
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<script src="/viewer.js" defer></script>
</head>
<body>
<a class="skip" href="#entity-title">Skip to the entity</a>
<header>
  <h1>event-history</h1>
  <p>History in <span id="where">…</span> <span class="dim">(read-only)</span></p>
</header>
<div class="layout">
  <nav aria-label="Entities">
    <h2 id="types-label">Entity types</h2>
    <div id="types" class="listbox" role="listbox" tabindex="0" aria-labelledby="types-label"></div>
    <label for="search">Search ids (starting with)</label>
    <input id="search" type="search" autocomplete="off" spellcheck="false" aria-controls="ids" disabled>
    <h2 id="ids-label">Ids</h2>
    <div id="ids" class="listbox" role="listbox" tabindex="0" aria-labelledby="ids-label"></div>
    <button id="more-ids" type="button" hidden>More ids</button>
    <p class="hint">Arrow keys move in a list, Enter opens.</p>
  </nav>
  <main>
    <h2 id="entity-title" tabindex="-1">Choose an entity type and an id</h2>
    <p id="error" role="alert"></p>
    <section id="entity" aria-labelledby="entity-title" hidden>
      <section aria-labelledby="chain-label">
        <h3 id="chain-label">Chain status</h3>
        <div id="chain" role="status" aria-live="polite"></div>
      </section>
      <section aria-labelledby="timeline-label">
        <h3 id="timeline-label">Timeline</h3>
        <table id="timeline">
          <caption class="dim">Newest first. Arrow keys move between versions; Enter shows one.</caption>
          <thead><tr><th scope="col">Version</th><th scope="col">Op</th><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Reason</th><th scope="col">Transaction</th><th scope="col">Changes</th></tr></thead>
          <tbody></tbody>
        </table>
        <button id="older" type="button" hidden>Older versions</button>
      </section>
      <section aria-labelledby="compare-label">
        <h3 id="compare-label">Compare two versions</h3>
        <div class="compare">
          <label for="from">From version</label> <select id="from"></select>
          <label for="to">to version</label> <select id="to"></select>
          <button id="compare" type="button">Show diff</button>
        </div>
        <div id="diff" aria-live="polite"></div>
      </section>
      <section aria-labelledby="version-label">
        <h3 id="version-label">Version</h3>
        <div id="version"><p class="dim">Choose a version in the timeline.</p></div>
      </section>
      <section aria-labelledby="tx-label">
        <h3 id="tx-label">Everything in a transaction</h3>
        <div id="tx"><p class="dim">Choose a transaction in the timeline.</p></div>
      </section>
    </section>
  </main>
</div>
</body>
</html>
`;

const STYLE = `:root { color-scheme: light dark; --accent: #1a5fb4; --add: #1e7b34; --remove: #b3261e; --line: #c8c8c8; --dim: #666; }
@media (prefers-color-scheme: dark) { :root { --accent: #8ab4f8; --add: #81c995; --remove: #f28b82; --line: #555; --dim: #aaa; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; }
header { padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 1.2rem; }
header p { margin: 0; }
.layout { display: grid; grid-template-columns: minmax(14rem, 20rem) 1fr; min-height: calc(100vh - 4rem); }
nav { padding: .5rem 1rem; border-right: 1px solid var(--line); }
main { padding: .5rem 1rem 2rem; min-width: 0; }
h2 { font-size: 1rem; margin: 1rem 0 .3rem; }
h3 { font-size: .95rem; margin: 1.2rem 0 .3rem; }
.dim, .hint { color: var(--dim); }
.hint { font-size: .85rem; }
label { display: inline-block; margin-top: .6rem; }
input[type=search] { width: 100%; padding: .3rem; font: inherit; }
.listbox { border: 1px solid var(--line); max-height: 16rem; overflow: auto; padding: 2px; }
.listbox:empty::after { content: 'nothing here'; color: var(--dim); padding: .2rem .4rem; display: block; }
[role=option] { padding: .15rem .4rem; cursor: pointer; white-space: pre; overflow: hidden; text-overflow: ellipsis; font-family: ui-monospace, monospace; }
[role=option][aria-selected=true] { background: var(--accent); color: Canvas; }
.listbox:focus-visible [role=option].active, [role=option].active:hover { outline: 2px solid var(--accent); outline-offset: -2px; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
button, select { font: inherit; padding: .2rem .6rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .25rem .5rem; border-bottom: 1px solid var(--line); }
td, pre, code { font-family: ui-monospace, monospace; font-size: .88rem; }
td { white-space: pre-wrap; word-break: break-word; }
#timeline td:nth-child(-n+2) { white-space: nowrap; }
.changes { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .88rem; }
tr.current { background: color-mix(in srgb, var(--accent) 14%, transparent); }
.add { color: var(--add); }
.remove { color: var(--remove); }
.ok { color: var(--add); font-weight: 600; }
.bad { color: var(--remove); font-weight: 600; }
.warn { font-weight: 600; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.side pre { border: 1px solid var(--line); padding: .5rem; overflow: auto; margin: .3rem 0; white-space: pre-wrap; word-break: break-word; }
#error:empty { display: none; }
#error { color: var(--remove); }
.skip { position: absolute; left: -999px; }
.skip:focus { left: .5rem; top: .5rem; background: Canvas; padding: .3rem; }
`;

const ICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#1a5fb4"/>' +
  '<path d="M8 4v4l3 2" stroke="#fff" stroke-width="1.6" fill="none"/></svg>';

const SCRIPT = String.raw`'use strict';
// The event-history viewer. Every value from the history reaches the page as text (textContent,
// option values, attributes set one by one), never as markup.
(function () {
  var state = { type: null, id: null, idsNext: null, olderBefore: null, versions: [], search: 0 };
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      if (key === 'text') node.textContent = props[key];
      else if (key === 'className') node.className = props[key];
      else if (key.slice(0, 2) === 'on') node.addEventListener(key.slice(2), props[key]);
      else node.setAttribute(key, props[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function api(path) {
    return fetch('/api/' + path, { headers: { accept: 'application/json' } }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || response.statusText);
        return body;
      });
    });
  }

  function showError(error) { $('error').textContent = error ? String(error.message || error) : ''; }

  function value(v) {
    if (v === undefined) return '';
    return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v);
  }

  // A listbox: one tab stop, arrow keys and Home/End move the active option, Enter, Space or a
  // click choose it (aria-activedescendant keeps focus on the list).
  var optionCount = 0;
  function listbox(box, onChoose) {
    box.addEventListener('keydown', function (event) {
      var options = Array.prototype.slice.call(box.querySelectorAll('[role=option]'));
      if (options.length === 0) return;
      var index = options.indexOf(box.querySelector('.active'));
      var next = index;
      if (event.key === 'ArrowDown') next = Math.min(options.length - 1, index + 1);
      else if (event.key === 'ArrowUp') next = Math.max(0, index - 1);
      else if (event.key === 'Home') next = 0;
      else if (event.key === 'End') next = options.length - 1;
      else if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        if (index >= 0) choose(box, options[index], onChoose);
        return;
      } else return;
      event.preventDefault();
      activate(box, options[next]);
    });
    box.addEventListener('click', function (event) {
      var option = event.target.closest('[role=option]');
      if (option) { activate(box, option); choose(box, option, onChoose); }
    });
  }

  function activate(box, option) {
    var previous = box.querySelector('.active');
    if (previous) previous.classList.remove('active');
    option.classList.add('active');
    box.setAttribute('aria-activedescendant', option.id);
    option.scrollIntoView({ block: 'nearest' });
  }

  function choose(box, option, onChoose) {
    box.querySelectorAll('[aria-selected=true]').forEach(function (o) { o.setAttribute('aria-selected', 'false'); });
    option.setAttribute('aria-selected', 'true');
    onChoose(option.dataset.value);
  }

  function fill(box, values, append) {
    if (!append) { clear(box); box.removeAttribute('aria-activedescendant'); }
    values.forEach(function (v) {
      optionCount += 1;
      var option = el('div', { role: 'option', id: 'option-' + optionCount, 'aria-selected': 'false', title: v, text: v });
      option.dataset.value = v;
      box.appendChild(option);
    });
    if (!box.querySelector('.active') && box.firstChild) activate(box, box.firstChild);
  }

  function loadTypes() {
    return api('store').then(function (store) { $('where').textContent = store.where; })
      .then(function () { return api('types'); })
      .then(function (body) { fill($('types'), body.types, false); })
      .catch(showError);
  }

  function chooseType(type) {
    state.type = type;
    $('search').disabled = false;
    $('search').value = '';
    return loadIds(false);
  }

  function loadIds(append) {
    var search = ++state.search;
    var query = '?prefix=' + encodeURIComponent($('search').value) + (append && state.idsNext !== null ? '&after=' + encodeURIComponent(state.idsNext) : '');
    return api('types/' + encodeURIComponent(state.type) + '/ids' + query).then(function (body) {
      if (search !== state.search) return;
      showError(null);
      fill($('ids'), body.ids, append);
      state.idsNext = body.next === undefined ? null : body.next;
      $('more-ids').hidden = state.idsNext === null;
    }).catch(showError);
  }

  function entityPath() { return 'entities/' + encodeURIComponent(state.type) + '/' + encodeURIComponent(state.id); }

  function openEntity(type, id) {
    state.type = type;
    state.id = id;
    state.versions = [];
    showError(null);
    $('entity-title').textContent = type + ' ' + id;
    $('entity').hidden = false;
    clear($('timeline').tBodies[0]);
    clear($('diff'));
    clear($('version'));
    $('version').appendChild(el('p', { className: 'dim', text: 'Choose a version in the timeline.' }));
    $('entity-title').focus();
    return Promise.all([loadTimeline(null), loadChain()]).then(function () {
      fillVersions();
    }).catch(showError);
  }

  function loadChain() {
    var box = $('chain');
    box.textContent = 'checking…';
    return api(entityPath() + '/verify').then(function (result) {
      clear(box);
      var verdict;
      if (!result.ok) verdict = el('p', {}, [el('span', { className: 'bad', text: 'TAMPERED or not verifiable' }), document.createTextNode(': ' + result.kind + (result.version > 0 ? ' at version ' + result.version : '') + ': ' + result.detail)]);
      else if (!result.chained) verdict = el('p', {}, [el('span', { className: 'warn', text: 'not chained' }), document.createTextNode(': ' + result.entries + ' entries, none with a hash: nothing proves this history unaltered')]);
      else verdict = el('p', {}, [el('span', { className: 'ok', text: 'ok' }), document.createTextNode(': ' + result.entries + ' entries, hash chain intact')]);
      box.appendChild(verdict);
      if (result.notes.length > 0) box.appendChild(el('ul', {}, result.notes.map(function (note) { return el('li', { text: note }); })));
    });
  }

  function changeList(changes) {
    if (changes.length === 0) return el('span', { className: 'dim', text: '(no field changed)' });
    return el('span', { className: 'changes' }, changes.map(function (change, i) {
      var text = change.kind === 'add' ? '+ ' + change.path + ': ' + value(change.after)
        : change.kind === 'remove' ? '- ' + change.path + ': ' + value(change.before)
        : '~ ' + change.path + ': ' + value(change.before) + ' → ' + value(change.after);
      return el('span', { className: change.kind === 'change' ? '' : change.kind, text: (i > 0 ? '\n' : '') + text });
    }));
  }

  function loadTimeline(before) {
    var query = before === null ? '' : '?before=' + before;
    return api(entityPath() + '/history' + query).then(function (body) {
      var tbody = $('timeline').tBodies[0];
      body.entries.forEach(function (entry) {
        state.versions.push(entry.version);
        var version = el('button', { type: 'button', className: 'version', 'aria-label': 'Version ' + entry.version + ': show it', text: 'v' + entry.version, onclick: function () { showVersion(entry.version); } });
        version.dataset.version = String(entry.version);
        var tx = entry.txId === undefined ? el('span', { className: 'dim', text: '—' })
          : el('button', { type: 'button', className: 'tx', title: entry.txId, 'aria-label': 'Everything in transaction ' + entry.txId, text: entry.txId.slice(0, 8), onclick: function () { showTransaction(entry.txId); } });
        var row = el('tr', {}, [
          el('td', {}, [version]),
          el('td', { text: entry.op }),
          el('td', {}, [el('time', { datetime: entry.timestamp, text: entry.timestamp.replace('T', ' ').replace('Z', ' UTC') })]),
          el('td', { text: entry.actor === undefined ? '' : entry.actor }),
          el('td', { text: entry.reason === undefined ? '' : entry.reason }),
          el('td', {}, [tx]),
          el('td', {}, [changeList(entry.changes)]),
        ]);
        row.dataset.version = String(entry.version);
        tbody.appendChild(row);
      });
      roving();
      state.olderBefore = body.next === undefined ? null : body.next.before;
      $('older').hidden = state.olderBefore === null;
    });
  }

  // One tab stop in the timeline: the version button of one row; arrows move between rows and,
  // left and right, to the row's transaction button.
  function roving() {
    var buttons = Array.prototype.slice.call($('timeline').querySelectorAll('tbody button'));
    var current = buttons.filter(function (b) { return b.tabIndex === 0; })[0] || buttons[0];
    buttons.forEach(function (b) { b.tabIndex = b === current ? 0 : -1; });
  }

  $('timeline').addEventListener('keydown', function (event) {
    var target = event.target;
    if (target.tagName !== 'BUTTON') return;
    var row = target.closest('tr');
    var next = null;
    if (event.key === 'ArrowDown' && row.nextElementSibling) next = row.nextElementSibling.querySelector(target.classList.contains('tx') ? '.tx' : '.version') || row.nextElementSibling.querySelector('.version');
    else if (event.key === 'ArrowUp' && row.previousElementSibling) next = row.previousElementSibling.querySelector(target.classList.contains('tx') ? '.tx' : '.version') || row.previousElementSibling.querySelector('.version');
    else if (event.key === 'ArrowRight') next = row.querySelector('.tx');
    else if (event.key === 'ArrowLeft') next = row.querySelector('.version');
    else if (event.key === 'Home') next = $('timeline').querySelector('tbody .version');
    else if (event.key === 'End') { var all = $('timeline').querySelectorAll('tbody .version'); next = all[all.length - 1]; }
    if (!next) return;
    event.preventDefault();
    $('timeline').querySelectorAll('tbody button').forEach(function (b) { b.tabIndex = -1; });
    next.tabIndex = 0;
    next.focus();
  });

  function fillVersions() {
    var versions = state.versions.slice().sort(function (a, b) { return a - b; });
    ['from', 'to'].forEach(function (name) {
      var select = $(name);
      clear(select);
      versions.forEach(function (v) { select.appendChild(el('option', { value: String(v), text: 'version ' + v })); });
    });
    if (versions.length > 0) {
      $('from').value = String(versions[0]);
      $('to').value = String(versions[versions.length - 1]);
    }
  }

  function snapshotBlock(label, entry) {
    return el('div', {}, [el('h4', { text: label }), el('pre', { text: JSON.stringify(entry.snapshot, null, 2) })]);
  }

  function showDiff() {
    var from = $('from').value;
    var to = $('to').value;
    var box = $('diff');
    return api(entityPath() + '/diff?from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to)).then(function (body) {
      clear(box);
      var rows = body.changes.map(function (change) {
        return el('tr', { className: change.kind }, [
          el('th', { scope: 'row', text: change.path }),
          el('td', { className: 'remove', text: change.kind === 'add' ? '' : value(change.before) }),
          el('td', { className: 'add', text: change.kind === 'remove' ? '' : value(change.after) }),
        ]);
      });
      box.appendChild(el('table', { id: 'diff-table' }, [
        el('caption', { text: 'Version ' + body.from.version + ' → version ' + body.to.version + ': ' + body.changes.length + ' field(s) changed' }),
        el('thead', {}, [el('tr', {}, [el('th', { scope: 'col', text: 'Field' }), el('th', { scope: 'col', text: 'Version ' + body.from.version }), el('th', { scope: 'col', text: 'Version ' + body.to.version })])]),
        el('tbody', {}, rows),
      ]));
      box.appendChild(el('div', { className: 'side' }, [snapshotBlock('Version ' + body.from.version, body.from), snapshotBlock('Version ' + body.to.version, body.to)]));
    }).catch(showError);
  }

  function showVersion(version) {
    var box = $('version');
    $('timeline').querySelectorAll('tbody tr').forEach(function (row) { row.classList.toggle('current', row.dataset.version === String(version)); });
    return api(entityPath() + '/versions/' + version).then(function (body) {
      clear(box);
      var e = body.entry;
      var fields = [['Version', String(e.version) + ' ' + e.op], ['Time', e.timestamp], ['Actor', e.actor], ['Reason', e.reason], ['Transaction', e.txId], ['Schema', e.schemaVersion === undefined ? undefined : String(e.schemaVersion)], ['Metadata', e.metadata === undefined ? undefined : JSON.stringify(e.metadata)], ['Hash', e.hash]];
      box.appendChild(el('dl', {}, fields.filter(function (f) { return f[1] !== undefined; }).reduce(function (all, f) { return all.concat([el('dt', { text: f[0] }), el('dd', { text: f[1] })]); }, [])));
      box.appendChild(el('p', {}, [changeList(body.changes)]));
      box.appendChild(snapshotBlock('Snapshot', e));
    }).catch(showError);
  }

  function showTransaction(txId) {
    var box = $('tx');
    return api('transactions/' + encodeURIComponent(txId)).then(function (body) {
      clear(box);
      box.appendChild(el('p', { text: 'Transaction ' + txId + ': ' + body.entries.length + ' entries' }));
      box.appendChild(el('ul', { 'aria-label': 'Entries of transaction ' + txId }, body.entries.map(function (entry) {
        return el('li', {}, [el('button', { type: 'button', text: entry.entityType + ' ' + entry.entityId + ' v' + entry.version + ' ' + entry.op, onclick: function () { openEntity(entry.entityType, entry.entityId); } })]);
      })));
      box.querySelector('button').focus();
    }).catch(showError);
  }

  listbox($('types'), chooseType);
  listbox($('ids'), function (id) { openEntity(state.type, id); });
  var typing = null;
  $('search').addEventListener('input', function () {
    clearTimeout(typing);
    typing = setTimeout(function () { loadIds(false); }, 150);
  });
  $('search').addEventListener('keydown', function (event) {
    if (event.key === 'ArrowDown') { event.preventDefault(); $('ids').focus(); }
  });
  $('more-ids').addEventListener('click', function () { loadIds(true); });
  $('older').addEventListener('click', function () { loadTimeline(state.olderBefore).then(fillVersions).catch(showError); });
  $('compare').addEventListener('click', showDiff);
  loadTypes();
})();
`;

/**
 * The viewer's page, style and script, served as they are: no build step, no framework, nothing
 * fetched from elsewhere. The script builds the page from the JSON API with `textContent` only,
 * so no value of the history is ever read as markup.
 *
 * ```ts
 * const { type, body } = VIEWER_ASSETS['/index.html'];
 * ```
 */
export const VIEWER_ASSETS: Readonly<Record<string, { readonly type: string; readonly body: string }>> = {
  '/index.html': { type: 'text/html; charset=utf-8', body: PAGE },
  '/viewer.css': { type: 'text/css; charset=utf-8', body: STYLE },
  '/viewer.js': { type: 'text/javascript; charset=utf-8', body: SCRIPT },
  '/favicon.svg': { type: 'image/svg+xml', body: ICON },
};
