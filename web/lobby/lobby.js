// The lobby page: staff sign in, then watch arrivals arrive over one
// Server-Sent Events stream and claim them. The server decides what a
// screen may see; this page only shows it. Every change (a claim, an
// escalation, a withdrawal) comes back through the stream, so all screens
// agree.
import { strings } from './i18n.js';

const $ = (sel, root = document) => root.querySelector(sel);

const state = {
  lang: pickLang(),
  name: '',
  role: '',
  report: null, // the manager's service report, when the role is manager
  reportTimer: 0,
  alerts: new Map(), // alert id -> { a: arrival, claim, escalation, el, cue }
  cards: new Map(), // verify card id -> { c: card, el }: near matches staff confirm or dismiss
  withdrawn: new Set(), // alerts marked "not this person": never shown again
  lastSeq: 0, // stream sequence of the last event seen: where a reconnect resumes
  offset: 0, // server clock minus this tablet's, in ms
  es: null,
  retries: 0,
  retryTimer: 0,
  sound: localStorage.getItem('concierge.lobby.sound') !== 'off',
  audio: null,
  rejecting: null,
};

// ---- words -----------------------------------------------------------------

function pickLang() {
  const saved = localStorage.getItem('concierge.lobby.lang');
  if (saved === 'zh' || saved === 'en') return saved;
  return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

function t(key, vars = {}) {
  const s = strings[state.lang][key] ?? strings.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

function applyLang() {
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('title') + ' · Concierge';
  for (const el of document.querySelectorAll('[data-i18n]')) {
    if (el.closest('#cards') || el.closest('#verify')) continue;
    el.textContent = t(el.dataset.i18n);
  }
  const other = state.lang === 'zh' ? 'en' : 'zh';
  $('#lang').textContent = other === 'zh' ? '中文' : 'English';
  $('#lang').lang = other === 'zh' ? 'zh-CN' : 'en';
  setConn($('#conn').dataset.state);
  $('#sound').textContent = t(state.sound ? 'soundOn' : 'soundOff');
  $('#sound').setAttribute('aria-pressed', String(state.sound));
  $('#who').textContent = state.name ? t('signedInAs', { name: state.name }) : '';
  render();
  renderReport();
}

// ---- time ------------------------------------------------------------------

const now = () => Date.now() + state.offset;

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

// ---- screens ---------------------------------------------------------------

function show(id) {
  for (const s of ['signin', 'disabled', 'lobby']) $('#' + s).hidden = s !== id;
  $('#signout').hidden = id !== 'lobby';
}

function showSignIn(message = '') {
  stopStream();
  stopReport();
  state.name = '';
  applyLang();
  $('#signin-error').textContent = message;
  show('signin');
  $('#signin-name').focus();
}

function setConn(s) {
  const el = $('#conn');
  el.dataset.state = s;
  el.textContent = t(s);
}

let toastTimer = 0;
function toast(message) {
  const el = $('#toast');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

// ---- server calls -----------------------------------------------------------

// post sends JSON: the server takes nothing else, which also keeps other
// sites' forms from posting here.
function post(path, body) {
  return fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
}

async function start() {
  let r;
  try {
    r = await fetch('me', { cache: 'no-store', credentials: 'same-origin' });
  } catch {
    setConn('reconnecting');
    show('lobby');
    scheduleReconnect();
    return;
  }
  if (r.status === 404) return show('disabled');
  if (r.status === 401) {
    const body = await r.json().catch(() => ({}));
    return showSignIn(/expired/.test(body?.error?.message ?? '') ? t('sessionExpired') : '');
  }
  const me = await r.json();
  signedIn(me.name, me.role);
}

function signedIn(name, role) {
  state.name = name;
  state.role = role || '';
  applyLang();
  show('lobby');
  connect();
  if (state.role === 'manager') startReport();
}

// ---- the manager's report ------------------------------------------------------

// Only a manager's page asks; the server refuses everyone else (403).
function startReport() {
  stopReport();
  loadReport();
  state.reportTimer = setInterval(loadReport, 60000);
}

function stopReport() {
  clearInterval(state.reportTimer);
  state.reportTimer = 0;
  state.report = null;
  $('#report').hidden = true;
}

async function loadReport() {
  try {
    const r = await fetch('report', { cache: 'no-store', credentials: 'same-origin' });
    if (r.status === 401) return showSignIn(t('sessionExpired'));
    if (!r.ok) {
      if (r.status === 403) stopReport();
      return;
    }
    state.report = await r.json();
  } catch {
    return; // the next tick tries again
  }
  renderReport();
}

function renderReport() {
  const rep = state.report;
  const box = $('#report');
  if (!rep) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const secs = (row, s) => (row.claims > 0 ? duration(s * 1000) : '–');
  const rows = [...rep.days, ...rep.totals].map((row) => {
    const tr = document.createElement('tr');
    if (!row.day) tr.className = 'total';
    const cells = [row.day || t('rTotal'), row.level_name || row.level || t('rNoTier'), row.arrivals, row.claims,
      secs(row, row.claim_median_s), secs(row, row.claim_p90_s), row.escalations, row.not_this_person,
      row.cards_confirmed, row.cards_dismissed];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = String(c);
      tr.append(td);
    }
    return tr;
  });
  $('#report-table tbody').replaceChildren(...rows);
  $('#report-table').hidden = rows.length === 0;
  $('#report-empty').hidden = rows.length > 0;
}

async function signIn(ev) {
  ev.preventDefault();
  unlockAudio();
  const name = $('#signin-name').value.trim();
  const password = $('#signin-password').value;
  const token = $('#signin-token').value.trim();
  const err = $('#signin-error');
  if (!token && (!name || !password)) {
    err.textContent = t('needCredentials');
    return;
  }
  $('#signin-submit').disabled = true;
  try {
    const r = await post('signin', token ? { token } : { name, password });
    if (r.ok) {
      $('#signin-password').value = '';
      $('#signin-token').value = '';
      err.textContent = '';
      const me = await r.json();
      signedIn(me.name, me.role);
    } else if (r.status === 429) {
      err.textContent = t('tooMany', { s: r.headers.get('Retry-After') || '60' });
    } else if (r.status === 401) {
      err.textContent = t('wrongCredentials');
    } else {
      err.textContent = t('actionFailed');
    }
  } catch {
    err.textContent = t('actionFailed');
  } finally {
    $('#signin-submit').disabled = false;
  }
}

async function signOut() {
  await post('signout', {}).catch(() => {});
  state.alerts.clear();
  state.lastSeq = 0;
  $('#cards').replaceChildren();
  render();
  showSignIn();
}

// ---- the event stream ----------------------------------------------------------

function stopStream() {
  clearTimeout(state.retryTimer);
  if (state.es) state.es.close();
  state.es = null;
}

// withdraw removes alerts from the screen for good (a "not this person"
// mark, or an erasure): a replayed arrival of one of them stays hidden.
function withdraw(ids) {
  let changed = false;
  for (const id of ids) {
    state.withdrawn.add(id);
    const x = state.alerts.get(id);
    if (x) {
      x.el?.remove();
      state.alerts.delete(id);
      changed = true;
    }
    if (dropCard(id)) changed = true;
  }
  if (changed) render();
}

function connect() {
  stopStream();
  setConn(state.lastSeq ? 'reconnecting' : 'connecting');
  // After a drop the page resumes after the last event it saw; EventSource
  // itself sends Last-Event-ID when it reconnects on its own.
  const es = new EventSource('events' + (state.lastSeq ? '?after=' + state.lastSeq : ''));
  state.es = es;
  const on = (name, fn) => es.addEventListener(name, (ev) => {
    if (ev.lastEventId) state.lastSeq = Math.max(state.lastSeq, Number(ev.lastEventId));
    fn(JSON.parse(ev.data));
  });
  on('hello', (h) => {
    state.offset = Date.parse(h.server_time) - Date.now();
    state.retries = 0;
    state.name = h.name;
    $('#who').textContent = t('signedInAs', { name: h.name });
    setConn('live');
  });
  on('arrival', onArrival);
  on('verify', onVerify);
  // Answered on another screen: the card and its face go here too.
  on('verify_answer', (a) => { if (dropCard(a.card_id)) render(); });
  on('claim', (c) => update(c.alert_id, (x) => { x.claim = c; }));
  on('escalation', (e) => update(e.alert_id, (x) => { x.escalation = e; }));
  on('rejection', (r) => withdraw([r.alert_id]));
  // The customer withdrew consent: the card and its face leave every screen.
  on('erasure', (e) => withdraw(e.alert_ids || []));
  on('expired', () => showSignIn(t('sessionExpired')));
  es.onerror = () => {
    if (state.es !== es) return;
    setConn('reconnecting');
    // CONNECTING: EventSource retries by itself. CLOSED: it gave up (an
    // HTTP error such as 401, or a proxy's error page): find out why.
    if (es.readyState === EventSource.CLOSED) scheduleReconnect();
  };
}

function scheduleReconnect() {
  stopStream();
  const delay = Math.min(10000, 500 * 2 ** state.retries++);
  state.retryTimer = setTimeout(async () => {
    try {
      const r = await fetch('me', { cache: 'no-store', credentials: 'same-origin' });
      if (r.status === 401) return showSignIn(t('sessionExpired'));
      if (r.status === 404) return show('disabled');
      if (!r.ok) return scheduleReconnect();
    } catch {
      return scheduleReconnect(); // the box is down or restarting
    }
    connect();
  }, delay);
}

// ---- alerts ------------------------------------------------------------------

function onArrival(a) {
  // A confirmed verify card comes back as an arrival with its id.
  dropCard(a.id);
  if (state.withdrawn.has(a.id) || state.alerts.has(a.id)) return;
  // Only a VIP who came in just now rings: not the backlog a page reads
  // when it opens.
  const recent = now() - Date.parse(a.time) < 60_000;
  state.alerts.set(a.id, { a, claim: null, escalation: null, el: null, cue: recent && a.tier?.vip });
  render();
  if (recent && a.tier?.vip) beep();
}

// ---- verify cards ------------------------------------------------------------

// A card asks "is this 王女士?" beside the live face. Cards have no place
// in the arrival order: they stay on top until answered or expired.
function onVerify(c) {
  if (state.withdrawn.has(c.id) || state.cards.has(c.id) || state.alerts.has(c.id)) return;
  const el = $('#verify-template').content.firstElementChild.cloneNode(true);
  el.dataset.id = c.id;
  const x = { c, el };
  $('.yes', el).addEventListener('click', (ev) => answer(x, 'confirm', ev.currentTarget));
  $('.no', el).addEventListener('click', (ev) => answer(x, 'dismiss', ev.currentTarget));
  if (c.thumbnail) $('.face', el).src = 'data:image/jpeg;base64,' + c.thumbnail;
  else $('.face', el).hidden = true;
  state.cards.set(c.id, x);
  $('#verify').append(el);
  render();
}

// dropCard removes a card and its face from the page.
function dropCard(id) {
  const x = state.cards.get(id);
  if (!x) return false;
  x.el.remove();
  state.cards.delete(id);
  return true;
}

function fillCard(x) {
  const { c, el } = x;
  $('.badge', el).textContent = c.tier ? c.tier.level_name || c.tier.level : t('noTier');
  $('.question', el).textContent = t('verifyQuestion', { name: c.name });
  $('.hint', el).textContent = t('verifyHint');
  $('.camera', el).textContent = t('camera', { id: c.camera });
  $('.yes', el).textContent = t('yes');
  $('.no', el).textContent = t('no');
}

async function answer(x, verb, btn) {
  unlockAudio();
  btn.disabled = true;
  try {
    const r = await post(verb, { card_id: x.c.id });
    if (r.status === 401) return showSignIn(t('sessionExpired'));
    if (r.ok || r.status === 404 || r.status === 409) {
      // Answered here or elsewhere, or expired: either way it is done. A
      // yes comes back as an arrival on every screen.
      if (!r.ok) toast(t('cardGone'));
      dropCard(x.c.id);
      render();
      return;
    }
    toast(t('actionFailed'));
  } catch {
    toast(t('actionFailed'));
  } finally {
    btn.disabled = false;
  }
}

function update(id, fn) {
  const x = state.alerts.get(id);
  if (!x) return; // an alert this page never showed (expired, or before its backlog)
  fn(x);
  render();
}

function since(a) {
  return Date.parse(a.first_seen || a.time);
}

function priority(a) {
  return a.service_level?.priority || 9;
}

// order: alerts nobody has taken first; then the most urgent service
// level; then whoever has waited longest.
function compare(x, y) {
  return (!!x.claim - !!y.claim) || (priority(x.a) - priority(y.a)) || (since(x.a) - since(y.a));
}

function render() {
  const list = $('#cards');
  const t0 = now();
  for (const [id, x] of state.alerts) {
    if (Date.parse(x.a.expires_at) <= t0) {
      x.el?.remove();
      state.alerts.delete(id);
    }
  }
  for (const [id, x] of state.cards) {
    if (Date.parse(x.c.expires_at) <= t0) dropCard(id);
    else fillCard(x);
  }
  const items = [...state.alerts.values()].sort(compare);
  items.forEach((x, i) => {
    if (!x.el) x.el = makeCard(x);
    fill(x);
    if (list.children[i] !== x.el) list.insertBefore(x.el, list.children[i] || null);
  });
  $('#empty').hidden = items.length > 0 || state.cards.size > 0;
}

function makeCard(x) {
  const el = $('#card-template').content.firstElementChild.cloneNode(true);
  el.dataset.id = x.a.id;
  $('.claim', el).addEventListener('click', (ev) => claim(x, ev.currentTarget));
  $('.reject', el).addEventListener('click', () => askReject(x));
  if (x.cue) {
    // A timer, not animationend: moving the card in the list restarts
    // its animation, and the flash must still stop.
    el.classList.add('flash');
    setTimeout(() => el.classList.remove('flash'), 3000);
  }
  return el;
}

function fill(x) {
  const { a, el } = x;
  const tier = a.tier;
  const badge = $('.badge', el);
  badge.textContent = tier ? tier.level_name || tier.level : t('noTier');
  el.classList.toggle('vip', !!tier?.vip);
  const face = $('.face', el);
  if (a.thumbnail && face.hidden) {
    // Only when the branch sends face thumbnails (alerts.thumbnail_px).
    face.src = 'data:image/jpeg;base64,' + a.thumbnail;
    face.hidden = false;
  }
  const name = a.customer.form_of_address || a.customer.display_name;
  $('.name', el).textContent = name;
  $('.masked', el).textContent = a.customer.form_of_address ? a.customer.display_name : '';
  $('.wait', el).textContent = t('waiting', { t: duration(now() - since(a)) });
  const sl = a.service_level;
  $('.lane', el).textContent = sl?.lane || '';
  $('.greeting', el).textContent = sl?.greeting ? `“${sl.greeting}”` : '';
  $('.rm', el).textContent = a.relationship_manager
    ? t('rm', { name: a.relationship_manager }) + (sl?.notify_rm ? ' · ' + t('notifyRM') : '')
    : '';
  $('.camera', el).textContent = t('camera', { id: a.camera });
  el.classList.toggle('escalated', !!x.escalation);
  $('.escalated', el).textContent = x.escalation ? t('escalated') : '';
  el.classList.toggle('claimed', !!x.claim);
  const claimBtn = $('.claim', el);
  claimBtn.hidden = !!x.claim;
  if (!claimBtn.dataset.pending) claimBtn.textContent = t('claim');
  $('.claimed', el).textContent = x.claim ? t('claimedBy', { name: x.claim.by }) : '';
  $('.reject', el).textContent = t('notThisPerson');
  $('.reject', el).hidden = !!x.claim;
}

async function claim(x, btn) {
  unlockAudio();
  btn.disabled = true;
  btn.dataset.pending = '1';
  btn.textContent = '…';
  try {
    const r = await post('claim', { alert_id: x.a.id });
    if (r.status === 401) return showSignIn(t('sessionExpired'));
    if (r.status === 409) toast(t('alreadyClaimed'));
    else if (!r.ok) toast(t('actionFailed'));
    // On success the claim shows when it comes back on the stream, as it
    // does on every other screen.
  } catch {
    toast(t('actionFailed'));
  } finally {
    btn.disabled = false;
    delete btn.dataset.pending;
    if (state.alerts.has(x.a.id)) fill(x);
  }
}

function askReject(x) {
  state.rejecting = x;
  const name = x.a.customer.form_of_address || x.a.customer.display_name;
  $('#reject-body').textContent = t('rejectBody', { name });
  $('#reject-dialog').showModal();
}

async function onRejectClosed() {
  const x = state.rejecting;
  state.rejecting = null;
  if (!x || $('#reject-dialog').returnValue !== 'confirm') return;
  try {
    const r = await post('reject', {
      alert_id: x.a.id,
      customer_id: x.a.customer.id,
      reason: $('#reject-reason').value,
    });
    if (r.status === 401) return showSignIn(t('sessionExpired'));
    if (r.status === 409) toast(t('alreadyRejected'));
    else if (!r.ok) toast(t('actionFailed'));
  } catch {
    toast(t('actionFailed'));
  }
}

// ---- sound -------------------------------------------------------------------

// Browsers start audio only after a touch or a key press, so the context
// is made on the first one.
function unlockAudio() {
  if (!state.audio && window.AudioContext) state.audio = new AudioContext();
  if (state.audio?.state === 'suspended') state.audio.resume();
}

// beep plays two short rising tones: no audio file to load or cache.
function beep() {
  const ctx = state.audio;
  if (!state.sound || !ctx || ctx.state !== 'running') return;
  const t0 = ctx.currentTime;
  for (const [f, at] of [[880, 0], [1320, 0.18]]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = f;
    gain.gain.setValueAtTime(0.0001, t0 + at);
    gain.gain.exponentialRampToValueAtTime(0.4, t0 + at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.16);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t0 + at);
    osc.stop(t0 + at + 0.17);
  }
}

// ---- wiring --------------------------------------------------------------------

$('#signin-form').addEventListener('submit', signIn);
$('#signout').addEventListener('click', signOut);
$('#lang').addEventListener('click', () => {
  state.lang = state.lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('concierge.lobby.lang', state.lang);
  applyLang();
});
$('#sound').addEventListener('click', () => {
  state.sound = !state.sound;
  localStorage.setItem('concierge.lobby.sound', state.sound ? 'on' : 'off');
  unlockAudio();
  applyLang();
});
$('#reject-dialog').addEventListener('close', onRejectClosed);
document.addEventListener('pointerdown', unlockAudio, { once: true });
window.addEventListener('online', () => { if (state.name && !state.es) connect(); });
// Waiting times tick, and expired alerts leave the list.
setInterval(render, 1000);

applyLang();
start();
