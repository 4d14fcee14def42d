// Rosetta's console: a client of the HTTP API like any other. The API key lives in
// sessionStorage only (gone with the tab), travels as `Authorization: Bearer`, and is never put
// in a URL. Every element is built with textContent: nothing the API returns is parsed as HTML.
'use strict';

const API = document.querySelector('meta[name="rosetta-api"]').content;
const KEY_SLOT = 'rosetta.apiKey';
const main = document.getElementById('main');
const banner = document.getElementById('banner');
const nav = document.getElementById('nav');

/** Timers and object URLs of the page shown; cleared when another page is shown. */
let pageTimers = [];
let pageUrls = [];

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** An element: `h('td', {testid: 'x', onclick: f, className: 'c'}, child, 'text', …)`. */
function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'testid') element.dataset.testid = value;
    else if (name === 'className') element.className = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'value') element.value = value;
    else if (name === 'checked') element.checked = Boolean(value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function key() {
  return sessionStorage.getItem(KEY_SLOT);
}

/** Calls the API; resolves with the JSON body (null for 204), rejects with an ApiError. */
async function api(method, path, body, signingIn) {
  const headers = { Accept: 'application/json' };
  const stored = signingIn || key();
  if (stored) headers.Authorization = `Bearer ${stored}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (error) {
    throw new ApiError(0, { message: 'The server cannot be reached.' });
  }
  const type = response.headers.get('content-type') || '';
  const data = response.status === 204 ? null : type.includes('json') ? await response.json() : await response.text();
  if (response.status === 401 && !signingIn) {
    signOut('Your API key was refused; sign in again.');
  }
  if (!response.ok) throw new ApiError(response.status, typeof data === 'object' ? data : { message: data });
  return data;
}

/** Every item of a list route, a page of 1 000 at a time. */
async function all(path) {
  const items = [];
  const separator = path.includes('?') ? '&' : '?';
  for (let skip = 0; ; skip += 1000) {
    const page = await api('GET', `${path}${separator}skip=${skip}&limit=1000`);
    items.push(...page);
    if (page.length < 1000) return items;
  }
}

function showError(error) {
  banner.textContent = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  banner.hidden = false;
}

function clearError() {
  banner.hidden = true;
  banner.textContent = '';
}

/** Runs `action`, showing what fails in the banner instead of the browser console. */
async function guarded(action) {
  try {
    clearError();
    await action();
  } catch (error) {
    showError(error);
  }
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  if (bytes < 0) return `−${formatBytes(-bytes)}`;
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function formatTime(text) {
  if (!text) return '—';
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function badge(text, kind) {
  return h('span', { className: `badge ${kind || String(text).toLowerCase()}` }, text);
}

// ---- pages ---------------------------------------------------------------------------------

function signInPage(message) {
  nav.hidden = true;
  const input = h('input', { type: 'password', name: 'api_key', id: 'api-key', testid: 'api-key', autocomplete: 'off' });
  const error = h('p', { className: 'field-error', testid: 'sign-in-error', role: 'alert', hidden: !message }, message || '');
  const form = h(
    'form',
    {
      className: 'card narrow',
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const candidate = input.value.trim();
        guarded(async () => {
          try {
            await api('GET', '/sources?limit=1', undefined, candidate || ' ');
          } catch (refused) {
            error.textContent = refused.status === 401 ? 'That API key was refused.' : refused.message;
            error.hidden = false;
            return;
          }
          sessionStorage.setItem(KEY_SLOT, candidate);
          input.value = '';
          route();
        });
      },
    },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'api-key' }, 'API key'),
    input,
    error,
    h('button', { type: 'submit', testid: 'sign-in' }, 'Sign in'),
  );
  main.replaceChildren(form);
  input.focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_SLOT);
  leavePage();
  signInPage(message);
}

async function overviewPage() {
  const [sources, states, firing] = await Promise.all([
    all('/sources'),
    api('GET', '/wal-monitor'),
    all('/alerts?state=FIRING'),
  ]);
  const stateOf = new Map(states.map((state) => [state.source_id, state]));
  const alertsOf = new Map();
  for (const alert of firing) alertsOf.set(alert.source_id, (alertsOf.get(alert.source_id) || []).concat(alert));
  const rows = sources.map((source) => {
    const state = stateOf.get(source.id);
    const largest = ((state && state.slots) || [])
      .filter((slot) => slot.retained_bytes !== null)
      .reduce((best, slot) => (!best || slot.retained_bytes > best.retained_bytes ? slot : best), null);
    const alerts = alertsOf.get(source.id) || [];
    const critical = alerts.some((alert) => alert.severity === 'critical');
    return h(
      'tr',
      { testid: 'source-row', 'data-source-id': source.id },
      h('td', {}, h('a', { href: `#/sources/${source.id}` }, source.name)),
      h('td', {}, `${source.pg_host}:${source.pg_port}/${source.pg_database}`),
      h('td', {}, state && state.status ? badge(state.status) : badge('not sampled', 'none')),
      h('td', {}, largest ? `${largest.slot_name}: ${formatBytes(largest.retained_bytes)}` : '—'),
      h('td', {}, formatBytes(state ? state.wal_dir_bytes : null)),
      h('td', {}, alerts.length ? badge(String(alerts.length), critical ? 'critical' : 'warning') : '0'),
    );
  });
  main.replaceChildren(
    h(
      'section',
      { className: 'card' },
      h('div', { className: 'heading' }, h('h1', {}, 'Sources'), h('a', { className: 'button', href: '#/sources/new', testid: 'new-source' }, 'New source')),
      h(
        'table',
        { testid: 'sources-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Database', 'Status', 'Largest retained slot', 'WAL on disk', 'Firing alerts'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows),
      ),
      sources.length ? null : h('p', { className: 'empty' }, 'No sources yet.'),
    ),
  );
}

const CHART_RANGES = [
  ['1 h', 3600],
  ['6 h', 6 * 3600],
  ['24 h', 86400],
  ['7 d', 7 * 86400],
  ['30 d', 30 * 86400],
];

async function sourcePage(id) {
  const [source, state, firing] = await Promise.all([
    api('GET', `/sources/${id}`),
    api('GET', `/wal-monitor/sources/${id}`),
    all(`/alerts?state=FIRING&source_id=${id}`),
  ]);
  let range = 3600;
  const chart = h('img', { testid: 'wal-chart', className: 'chart', alt: `Retained WAL of ${source.name} per slot and WAL on disk` });
  const loadChart = async () => {
    const width = Math.max(320, Math.min(4000, Math.round(main.clientWidth - 48)));
    const from = new Date(Date.now() - range * 1000).toISOString();
    const response = await fetch(`${API}/wal-monitor/sources/${id}/chart.svg?from=${encodeURIComponent(from)}&width=${width}&height=320`, {
      headers: { Authorization: `Bearer ${key()}` },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
    if (!response.ok) throw new ApiError(response.status, await response.json());
    const url = URL.createObjectURL(await response.blob());
    const previous = chart.dataset.url;
    chart.src = url;
    chart.dataset.url = url;
    pageUrls.push(url);
    if (previous) URL.revokeObjectURL(previous);
  };
  const rangeButtons = CHART_RANGES.map(([label, seconds]) =>
    h('button', { type: 'button', className: seconds === range ? 'selected' : '', onclick: (event) => {
      range = seconds;
      for (const button of rangeButtons) button.className = '';
      event.target.className = 'selected';
      guarded(loadChart);
    } }, label),
  );
  const slots = (state.slots || []).map((slot) =>
    h(
      'tr',
      { 'data-slot-name': slot.slot_name },
      h('td', {}, slot.slot_name),
      h('td', {}, slot.slot_type),
      h('td', {}, slot.active ? badge('active', 'active') : badge('inactive', 'idle')),
      h('td', {}, formatBytes(slot.retained_bytes)),
      h('td', {}, formatBytes(slot.confirmed_lag_bytes)),
      h('td', {}, slot.wal_status || '—'),
      h('td', {}, formatBytes(slot.safe_wal_size_bytes)),
      h('td', {}, slot.pipeline_id ? h('a', { href: '#/pipelines' }, `pipeline ${slot.pipeline_id}`) : '—'),
    ),
  );
  const checks = h('ul', { testid: 'checks-list', className: 'checks' });
  const validate = h('button', { type: 'button', testid: 'validate', onclick: () => guarded(async () => {
    validate.disabled = true;
    try {
      const preflight = await api('POST', `/sources/${id}/validate`);
      checks.replaceChildren(
        h('li', { className: preflight.ok ? 'pass' : 'fail' }, preflight.ok ? 'Ready for CDC.' : 'Not ready: fix the failed checks.'),
        ...preflight.checks.map((check) =>
          h('li', { 'data-check': check.name, className: check.status }, badge(check.status), ' ', h('strong', {}, check.name), ': ', check.message,
            check.fix ? h('div', { className: 'fix' }, 'Fix: ', h('code', {}, check.fix)) : null),
        ),
      );
    } finally {
      validate.disabled = false;
    }
  }) }, 'Validate');
  main.replaceChildren(
    h(
      'section',
      { className: 'card' },
      h('div', { className: 'heading' },
        h('h1', {}, source.name),
        h('a', { className: 'button', href: `#/sources/${id}/edit`, testid: 'edit-source' }, 'Edit')),
      h('p', { className: 'meta' },
        `${source.pg_username}@${source.pg_host}:${source.pg_port}/${source.pg_database} · TLS ${source.pg_sslmode} · publication ${source.publication_name}`),
      h('p', {}, 'Status: ', state.status ? badge(state.status) : badge('not sampled', 'none'),
        state.error ? h('span', { className: 'error-text' }, ` ${state.error}`) : null,
        ` · WAL on disk ${formatBytes(state.wal_dir_bytes)} · last sample ${formatTime(state.sampled_at)}`),
    ),
    h('section', { className: 'card' }, h('div', { className: 'heading' }, h('h2', {}, 'Retained WAL'), h('div', { className: 'ranges' }, rangeButtons)), chart),
    h(
      'section',
      { className: 'card' },
      h('h2', {}, 'Replication slots'),
      h('table', { testid: 'slots-table' },
        h('thead', {}, h('tr', {}, ['Slot', 'Type', 'Consumer', 'Retained', 'Lag', 'wal_status', 'Safe size', 'Pipeline'].map((t) => h('th', {}, t)))),
        h('tbody', {}, slots)),
      slots.length ? null : h('p', { className: 'empty' }, state.status ? 'No replication slots.' : 'Not sampled yet.'),
    ),
    h('section', { className: 'card' }, h('div', { className: 'heading' }, h('h2', {}, 'Preflight'), validate), checks),
    h('section', { className: 'card' }, h('h2', {}, 'Firing alerts'), alertList(firing, () => route())),
  );
  await loadChart();
  pageTimers.push(setInterval(() => guarded(loadChart), 15000));
}

function alertList(alerts, after) {
  return h(
    'ul',
    { testid: 'alerts-list', className: 'alerts' },
    alerts.length ? null : h('li', { className: 'empty' }, 'No alerts.'),
    alerts.map((alert) =>
      h('li', { 'data-alert-id': alert.id, className: alert.state.toLowerCase() },
        badge(alert.severity), ' ', badge(alert.state, alert.state.toLowerCase()), ' ',
        h('strong', {}, alert.rule), ` · ${alert.source_name}${alert.slot_name ? ` / ${alert.slot_name}` : ''} · ${alert.summary} · since ${formatTime(alert.started_at)}`,
        alert.acknowledged_at
          ? h('span', { className: 'acked', testid: 'alert-acknowledged' }, ` acknowledged ${formatTime(alert.acknowledged_at)}`)
          : alert.state === 'FIRING'
            ? h('button', { type: 'button', testid: 'alert-ack', onclick: () => guarded(async () => {
                await api('POST', `/alerts/${alert.id}/ack`);
                await after();
              }) }, 'Acknowledge')
            : null),
    ),
  );
}

async function alertsPage() {
  const [firing, recent] = await Promise.all([all('/alerts?state=FIRING'), api('GET', '/alerts?state=RESOLVED&limit=50')]);
  main.replaceChildren(
    h('section', { className: 'card' }, h('h1', {}, 'Firing alerts'), alertList(firing, () => route())),
    h('section', { className: 'card' }, h('h2', {}, 'Recently resolved'), alertList(recent, () => route())),
  );
}

async function pipelinesPage() {
  const pipelines = await all('/pipelines');
  const action = (pipeline, verb, testid) =>
    h('button', { type: 'button', testid, onclick: () => guarded(async () => {
      await api('POST', `/pipelines/${pipeline.id}/${verb}`);
      await route();
    }) }, verb[0].toUpperCase() + verb.slice(1));
  main.replaceChildren(
    h(
      'section',
      { className: 'card' },
      h('div', { className: 'heading' }, h('h1', {}, 'Pipelines'), h('a', { className: 'button', href: '#/pipelines/new', testid: 'new-pipeline' }, 'New pipeline')),
      h('table', { testid: 'pipelines-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Source', 'Destination', 'Desired', 'Observed', 'Slot', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, pipelines.map((pipeline) =>
          h('tr', { testid: 'pipeline-row', 'data-pipeline-id': pipeline.id },
            h('td', {}, pipeline.name),
            h('td', {}, h('a', { href: `#/sources/${pipeline.source_id}` }, pipeline.source ? pipeline.source.name : pipeline.source_id)),
            h('td', {}, pipeline.destination ? pipeline.destination.name : pipeline.destination_id),
            h('td', { testid: 'pipeline-status' }, pipeline.status),
            h('td', {}, pipeline.pipeline_metadata ? badge(pipeline.pipeline_metadata.status) : '—',
              pipeline.pipeline_metadata && pipeline.pipeline_metadata.last_error ? h('span', { className: 'error-text' }, ` ${pipeline.pipeline_metadata.last_error}`) : null),
            h('td', {}, `${pipeline.slot_name}${pipeline.slot_managed ? ' (managed)' : ''}`),
            h('td', { className: 'actions' }, action(pipeline, 'start', 'pipeline-start'), action(pipeline, 'pause', 'pipeline-pause'),
              action(pipeline, 'refresh', 'pipeline-refresh'), h('a', { href: `#/pipelines/${pipeline.id}/edit`, testid: 'pipeline-edit' }, 'Edit')),
          ))),
      ),
      pipelines.length ? null : h('p', { className: 'empty' }, 'No pipelines yet.'),
    ),
  );
}

async function destinationsPage() {
  const destinations = await all('/destinations');
  main.replaceChildren(
    h('section', { className: 'card' },
      h('div', { className: 'heading' }, h('h1', {}, 'Destinations'), h('a', { className: 'button', href: '#/destinations/new', testid: 'new-destination' }, 'New destination')),
      h('table', { testid: 'destinations-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Account', 'User', 'Database.schema', 'Role', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, destinations.map((d) => h('tr', { 'data-destination-id': d.id },
          h('td', {}, d.name), h('td', {}, d.snowflake_account), h('td', {}, d.snowflake_user),
          h('td', {}, `${d.snowflake_database}.${d.snowflake_schema}`), h('td', {}, d.snowflake_role || '—'),
          h('td', {}, h('a', { href: `#/destinations/${d.id}/edit` }, 'Edit')))))),
      destinations.length ? null : h('p', { className: 'empty' }, 'No destinations yet.')),
  );
}

// ---- forms ---------------------------------------------------------------------------------

/**
 * A form whose inputs are named like the API's fields. `fields`: {name, label, type ('text',
 * 'number', 'password', 'select', 'textarea', 'checkbox'), options, value, help}. On submit,
 * `save(body)` is called with the filled fields; a 422 puts each message next to its field.
 */
function apiForm(testid, title, fields, save, cancelHref) {
  const inputs = new Map();
  const errors = new Map();
  const general = h('p', { className: 'field-error', testid: 'form-message', role: 'alert', hidden: true });
  const rows = fields.map((field) => {
    const id = `field-${field.name}`;
    let input;
    if (field.type === 'select') {
      input = h('select', { id, name: field.name }, field.options.map(([value, label]) => h('option', { value }, label)));
      if (field.value !== undefined && field.value !== null) input.value = String(field.value);
    } else if (field.type === 'textarea') {
      input = h('textarea', { id, name: field.name, rows: 4, spellcheck: 'false' });
      input.value = field.value || '';
    } else if (field.type === 'checkbox') {
      input = h('input', { id, name: field.name, type: 'checkbox', checked: field.value });
    } else {
      input = h('input', { id, name: field.name, type: field.type === 'number' ? 'text' : field.type || 'text',
        inputmode: field.type === 'number' ? 'numeric' : null, autocomplete: field.type === 'password' ? 'new-password' : 'off',
        placeholder: field.placeholder, value: field.value === undefined || field.value === null ? '' : String(field.value) });
    }
    inputs.set(field.name, { field, input });
    const error = h('div', { className: 'field-error-slot' });
    errors.set(field.name, error);
    return h('div', { className: 'field' }, h('label', { for: id }, field.label), input, field.help ? h('small', {}, field.help) : null, error);
  });
  const submit = h('button', { type: 'submit', testid: `${testid}-submit` }, 'Save');
  const form = h('form', { className: 'card', testid, novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    const body = {};
    for (const [name, { field, input }] of inputs) {
      if (field.type === 'checkbox') {
        body[name] = input.checked;
        continue;
      }
      const raw = input.value.trim();
      if (raw === '') {
        if (field.emptyAs !== undefined) body[name] = field.emptyAs;
        continue;
      }
      body[name] = field.type === 'number' && /^-?\d+$/.test(raw) ? Number(raw) : field.type === 'textarea' ? input.value : raw;
    }
    for (const slot of errors.values()) slot.replaceChildren();
    general.hidden = true;
    submit.disabled = true;
    save(body)
      .catch((error) => {
        const details = error.body && Array.isArray(error.body.details) ? error.body.details : [];
        let placed = false;
        for (const detail of details) {
          const field = Array.isArray(detail.loc) && detail.loc[0] === 'body' ? detail.loc[1] : null;
          if (field && errors.has(field)) {
            errors.get(field).append(h('div', { className: 'field-error', testid: 'form-error', 'data-field': field }, detail.msg));
            placed = true;
          }
        }
        if (!placed || error.status !== 422) {
          general.textContent = error.message;
          general.hidden = false;
        }
      })
      .finally(() => {
        submit.disabled = false;
      });
  } }, h('h1', {}, title), general, rows, h('div', { className: 'buttons' }, submit, h('a', { href: cancelHref }, 'Cancel')));
  main.replaceChildren(form);
}

const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'].map((m) => [m, m]);

/** A write-only field: empty sends nothing (on an edit: keeps what is stored). */
function secretField(name, label, editing, stored) {
  const placeholder = editing ? (stored ? 'unchanged (stored encrypted)' : 'none set') : '';
  return { name, label, type: 'password', placeholder, help: 'Write-only: it is never shown again.' };
}

async function sourceFormPage(id) {
  const source = id ? await api('GET', `/sources/${id}`) : {};
  const editing = Boolean(id);
  apiForm('source-form', editing ? `Edit ${source.name}` : 'New source', [
    { name: 'name', label: 'Name', value: source.name },
    { name: 'pg_host', label: 'Host', value: source.pg_host },
    { name: 'pg_port', label: 'Port', type: 'number', value: source.pg_port ?? 5432 },
    { name: 'pg_database', label: 'Database', value: source.pg_database },
    { name: 'pg_username', label: 'User', value: source.pg_username },
    secretField('pg_password', 'Password', editing, source.has_password),
    { name: 'publication_name', label: 'Publication', value: source.publication_name },
    { name: 'replication_id', label: 'Replication id', type: 'number', value: source.replication_id ?? 1 },
    { name: 'pg_sslmode', label: 'TLS (sslmode)', type: 'select', options: SSL_MODES, value: source.pg_sslmode || 'prefer' },
    { name: 'pg_sslrootcert', label: 'Root certificate (PEM)', type: 'textarea', value: source.pg_sslrootcert,
      emptyAs: editing ? null : undefined, help: 'The CA to trust for verify-ca / verify-full; empty: the system roots.' },
  ], async (body) => {
    const saved = editing ? await api('PATCH', `/sources/${id}`, body) : await api('POST', '/sources', body);
    location.hash = `#/sources/${saved.id}`;
  }, editing ? `#/sources/${id}` : '#/');
}

async function destinationFormPage(id) {
  const destination = id ? await api('GET', `/destinations/${id}`) : {};
  const editing = Boolean(id);
  apiForm('destination-form', editing ? `Edit ${destination.name}` : 'New destination', [
    { name: 'name', label: 'Name', value: destination.name },
    { name: 'snowflake_account', label: 'Account', value: destination.snowflake_account },
    { name: 'snowflake_host', label: 'Host (optional)', value: destination.snowflake_host, emptyAs: editing ? null : undefined },
    { name: 'snowflake_user', label: 'User', value: destination.snowflake_user },
    { name: 'snowflake_database', label: 'Database', value: destination.snowflake_database },
    { name: 'snowflake_schema', label: 'Schema', value: destination.snowflake_schema },
    { name: 'snowflake_role', label: 'Role (optional)', value: destination.snowflake_role, emptyAs: editing ? null : undefined },
    { name: 'snowflake_private_key_path', label: 'Private key path', value: destination.snowflake_private_key_path },
    secretField('snowflake_private_key_passphrase', 'Private key passphrase', editing, destination.has_private_key_passphrase),
  ], async (body) => {
    if (editing) await api('PATCH', `/destinations/${id}`, body);
    else await api('POST', '/destinations', body);
    location.hash = '#/destinations';
  }, '#/destinations');
}

async function pipelineFormPage(id) {
  const [sources, destinations, pipeline] = await Promise.all([
    all('/sources'),
    all('/destinations'),
    id ? api('GET', `/pipelines/${id}`) : Promise.resolve({}),
  ]);
  const editing = Boolean(id);
  const fields = [
    { name: 'name', label: 'Name', value: pipeline.name },
    { name: 'source_id', label: 'Source', type: 'select', options: sources.map((s) => [s.id, s.name]), value: pipeline.source_id },
    { name: 'destination_id', label: 'Destination', type: 'select', options: destinations.map((d) => [d.id, d.name]), value: pipeline.destination_id },
  ];
  if (editing) {
    fields.push({ name: 'slot_name', label: 'Slot name', value: pipeline.slot_name,
      help: pipeline.slot_managed ? 'Rosetta created this slot: it cannot be renamed while it exists.' : undefined });
  } else {
    fields.push(
      { name: 'status', label: 'Start as', type: 'select', options: [['START', 'started'], ['PAUSE', 'paused']] },
      { name: 'slot_name', label: 'Slot name (optional)', placeholder: 'rosetta_<id>' },
      { name: 'provision', label: 'Create its replication slot now', type: 'checkbox', value: true },
    );
  }
  apiForm('pipeline-form', editing ? `Edit ${pipeline.name}` : 'New pipeline', fields, async (body) => {
    for (const field of ['source_id', 'destination_id']) if (body[field] !== undefined) body[field] = Number(body[field]);
    if (editing) {
      // Only what changed: a pipeline that owns its slot keeps its source and slot name.
      for (const field of ['source_id', 'slot_name']) if (body[field] === pipeline[field]) delete body[field];
      await api('PATCH', `/pipelines/${id}`, body);
    }
    else await api('POST', '/pipelines', body);
    location.hash = '#/pipelines';
  }, '#/pipelines');
}

// ---- routing -------------------------------------------------------------------------------

function leavePage() {
  for (const timer of pageTimers) clearInterval(timer);
  for (const url of pageUrls) URL.revokeObjectURL(url);
  pageTimers = [];
  pageUrls = [];
}

const ROUTES = [
  [/^#?\/?$/, () => overviewPage()],
  [/^#\/sources\/new$/, () => sourceFormPage(null)],
  [/^#\/sources\/(\d+)$/, (id) => sourcePage(id)],
  [/^#\/sources\/(\d+)\/edit$/, (id) => sourceFormPage(id)],
  [/^#\/pipelines$/, () => pipelinesPage()],
  [/^#\/pipelines\/new$/, () => pipelineFormPage(null)],
  [/^#\/pipelines\/(\d+)\/edit$/, (id) => pipelineFormPage(id)],
  [/^#\/destinations$/, () => destinationsPage()],
  [/^#\/destinations\/new$/, () => destinationFormPage(null)],
  [/^#\/destinations\/(\d+)\/edit$/, (id) => destinationFormPage(id)],
  [/^#\/alerts$/, () => alertsPage()],
];

async function route() {
  leavePage();
  if (!key()) {
    signInPage();
    return;
  }
  nav.hidden = false;
  const hash = location.hash || '#/';
  for (const [pattern, page] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      await guarded(() => page(...match.slice(1)));
      return;
    }
  }
  main.replaceChildren(h('section', { className: 'card' }, h('h1', {}, 'Not found'), h('a', { href: '#/' }, 'Back to the sources')));
}

document.getElementById('sign-out').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => route());
route();
