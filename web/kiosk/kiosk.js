// The enrollment kiosk page: consent, photos with live guidance, the
// liveness check and the result; and the withdrawal of consent. Every
// decision is the server's (the kiosk API under /v1); this page only shows
// the camera, sends frames and says what to do next.
import { strings } from './i18n.js';

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Timing of the camera steps. Guidance frames go one at a time (the next
// leaves when the last answer is in), so a slow box slows the loop rather
// than queueing frames.
const GUIDANCE_PAUSE_MS = 300;
const OK_FRAMES_BEFORE_PHOTO = 2;
const LIVENESS_FRAMES = 16;
const LIVENESS_EVERY_MS = 250;
const LIVENESS_GET_READY_MS = 1500;
const RESULT_TIMEOUT_MS = 20000;

const state = {
  lang: localStorage.getItem('kiosk.lang') || (navigator.language.startsWith('zh') ? 'zh' : 'en'),
  token: null,
  session: null, // the open enrollment's id
  consent: null, // the consent text shown
  stream: null,
  run: 0, // bumped to stop the camera loops of an abandoned enrollment
  resultTimer: null,
};

function t(key, vars = {}) {
  const table = strings[state.lang] || strings.en;
  let s = key.split('.').reduce((o, k) => (o ? o[k] : undefined), table);
  if (s === undefined) s = key.split('.').reduce((o, k) => (o ? o[k] : undefined), strings.en) ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? '');
}

function applyLang() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  $('lang-zh').setAttribute('aria-pressed', String(state.lang === 'zh'));
  $('lang-en').setAttribute('aria-pressed', String(state.lang === 'en'));
}

function show(name) {
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== `screen-${name}`;
  document.body.dataset.screen = name;
}

function setError(id, text) {
  $(id).textContent = text || '';
}

// The kiosk's token: provisioned once by opening the page with #token=…
// (then removed from the address bar), or typed by staff; kept in this
// browser's localStorage.
function readToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem('kiosk.token', decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return localStorage.getItem('kiosk.token');
}

// api calls the kiosk API and returns {status, data, code}.
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body instanceof Blob) {
    payload = body;
    headers['Content-Type'] = body.type;
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch {
    return { status: 0, data: null, code: 'network' };
  }
  let data = null;
  if (resp.status !== 204) {
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
  }
  const code = data && data.error ? data.error.code : '';
  if (resp.status === 401) provision(t('badToken'));
  return { status: resp.status, data, code, retryAfter: Number(resp.headers.get('Retry-After')) || 1 };
}

function provision(message) {
  stopCamera();
  state.session = null;
  localStorage.removeItem('kiosk.token');
  setError('provision-error', message);
  show('provision');
}

function home() {
  clearTimeout(state.resultTimer);
  stopCamera();
  state.session = null;
  for (const f of ['start-form', 'withdraw-form']) $(f).reset();
  for (const e of ['start-error', 'consent-error', 'capture-error', 'withdraw-error']) setError(e, '');
  delete document.body.dataset.outcome;
  delete document.body.dataset.liveness;
  show('home');
}

function result(outcome, title, body) {
  stopCamera();
  state.session = null;
  document.body.dataset.outcome = outcome;
  $('result-title').textContent = title;
  $('result-body').textContent = body;
  show('result');
  clearTimeout(state.resultTimer);
  state.resultTimer = setTimeout(home, RESULT_TIMEOUT_MS);
}

// abandon ends the open enrollment on the server: nothing of it is kept.
async function abandon() {
  const sid = state.session;
  state.session = null;
  if (sid) await api('DELETE', `/v1/enrollments/${sid}`);
  home();
}

// failure turns an API error that ends the enrollment into a result.
function failure(r) {
  if (r.status === 404) return result('expired', t('expired'), '');
  if (r.code === 'staff_review') return result('review', t('reviewTitle'), t('reviewBody'));
  if (r.code === 'too_many_attempts') return result('liveness_failed', t('tooManyAttempts'), '');
  return result('error', t('failed'), r.data && r.data.error ? r.data.error.message : '');
}

// ---- enrollment -----------------------------------------------------------

async function startEnrollment(ev) {
  ev.preventDefault();
  const body = {
    customer_id: $('start-customer').value.trim(),
    display_name: $('start-name').value.trim(),
    verified_by: $('start-staff').value.trim(),
    reference: $('start-reference').value.trim(),
  };
  if (!body.verified_by && !body.reference) return setError('start-error', t('needVerifier'));
  setError('start-error', t('starting'));
  const r = await api('POST', '/v1/enrollments', body);
  if (r.status !== 201) return setError('start-error', r.data && r.data.error ? r.data.error.message : t('failed'));
  setError('start-error', '');
  state.session = r.data.session_id;
  $('photo-needed').textContent = r.data.photos_needed;
  await showConsent();
}

async function showConsent() {
  const r = await api('GET', `/v1/consent-text?lang=${encodeURIComponent(state.lang)}`);
  if (r.status !== 200) return failure(r);
  state.consent = r.data;
  const article = $('consent-text');
  article.replaceChildren();
  for (const para of r.data.text.trim().split(/\n\s*\n/)) {
    const lines = para.split('\n');
    if (lines.length > 1 && lines[0].length < 40) {
      const h = document.createElement('h3');
      h.textContent = lines.shift();
      article.append(h);
    }
    const p = document.createElement('p');
    p.textContent = lines.join(' ');
    article.append(p);
  }
  $('consent-version').textContent = `${r.data.version} · ${r.data.sha256.slice(0, 12)}`;
  show('consent');
}

async function agree() {
  const c = state.consent;
  const r = await api('POST', `/v1/enrollments/${state.session}/consent`, {
    text_version: c.version, language: c.language, sha256: c.sha256, accepted: true,
  });
  if (r.code === 'stale_consent_text') return showConsent();
  if (r.status !== 200) return failure(r);
  await capture();
}

async function openCamera() {
  if (state.stream) return true;
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: 'user' }, audio: false,
    });
  } catch {
    setError('capture-error', t('cameraError'));
    return false;
  }
  const video = $('capture-video');
  video.srcObject = state.stream;
  await video.play().catch(() => {});
  while (video.videoWidth === 0) await sleep(50);
  return true;
}

function stopCamera() {
  state.run++;
  if (state.stream) for (const tr of state.stream.getTracks()) tr.stop();
  state.stream = null;
  $('capture-video').srcObject = null;
}

// grab returns the camera's current frame as a JPEG.
function grab() {
  const video = $('capture-video');
  const canvas = $('grab');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.9));
}

function guide(hint) {
  const g = $('guidance');
  g.textContent = t(`hint.${hint}`);
  g.dataset.hint = hint;
}

async function capture() {
  show('capture');
  document.body.dataset.liveness = 'pending';
  $('liveness-state').textContent = t('pending');
  $('liveness-instruction').hidden = true;
  $('btn-liveness-retry').hidden = true;
  setError('capture-error', '');
  const run = ++state.run;
  if (!(await openCamera())) return;
  const sid = state.session;
  let ok = 0;
  let accepted = 0;
  const needed = Number($('photo-needed').textContent) || 3;
  while (run === state.run && accepted < needed) {
    const frame = await grab();
    const g = await api('POST', `/v1/enrollments/${sid}/guidance`, frame);
    if (run !== state.run) return;
    if (g.status === 429) {
      await sleep(g.retryAfter * 1000);
      continue;
    }
    if (g.status !== 200) return failure(g);
    guide(g.data.hint);
    ok = g.data.accepted ? ok + 1 : 0;
    if (ok >= OK_FRAMES_BEFORE_PHOTO) {
      const p = await api('POST', `/v1/enrollments/${sid}/photos`, await grab());
      if (run !== state.run) return;
      if (p.status === 201) {
        accepted = p.data.photos_accepted;
        $('photo-count').textContent = accepted;
      } else if (p.status === 422) {
        guide(p.data.error.detail.feedback.hint);
      } else if (p.status !== 429) {
        return failure(p);
      }
      ok = 0;
    }
    await sleep(GUIDANCE_PAUSE_MS);
  }
  if (run === state.run) await liveness(run);
}

async function liveness(run) {
  const sid = state.session;
  const instr = $('liveness-instruction');
  $('btn-liveness-retry').hidden = true;
  instr.hidden = false;
  instr.textContent = t('livenessWait');
  guide('face_camera');
  await sleep(LIVENESS_GET_READY_MS);
  if (run !== state.run) return;
  instr.textContent = t('livenessGo');
  guide('turn_head');
  const form = new FormData();
  for (let i = 0; i < LIVENESS_FRAMES; i++) {
    form.append('frame', await grab(), `frame${i}.jpg`);
    await sleep(LIVENESS_EVERY_MS);
    if (run !== state.run) return;
  }
  instr.textContent = t('livenessChecking');
  const r = await api('POST', `/v1/enrollments/${sid}/liveness`, form);
  if (run !== state.run) return;
  if (r.status === 200) {
    document.body.dataset.liveness = 'passed';
    $('liveness-state').textContent = t('passed');
    instr.hidden = true;
    return finish();
  }
  if (r.code === 'liveness_failed') {
    document.body.dataset.liveness = 'failed';
    const d = r.data.error.detail;
    guide(d.hint);
    instr.textContent = t(`hint.${d.hint}`);
    if (d.liveness_attempts_left > 0) {
      $('btn-liveness-retry').hidden = false;
      return;
    }
    return result('liveness_failed', t('tooManyAttempts'), '');
  }
  return failure(r);
}

async function finish() {
  const r = await api('POST', `/v1/enrollments/${state.session}/finish`);
  if (r.status === 201) return result('enrolled', t('enrolledTitle'), t('enrolledBody'));
  return failure(r);
}

// ---- withdrawal -----------------------------------------------------------

async function withdraw(ev) {
  ev.preventDefault();
  const id = $('wd-customer').value.trim();
  const verifiedBy = $('wd-staff').value.trim();
  const reference = $('wd-reference').value.trim();
  if (!$('wd-confirm').checked) return setError('withdraw-error', t('needConfirm'));
  if (!verifiedBy && !reference) return setError('withdraw-error', t('needVerifier'));
  const r = await api('POST', `/v1/customers/${encodeURIComponent(id)}/withdraw`, {
    confirm: true, verified_by: verifiedBy, reference,
  });
  if (r.status === 200) return result('withdrawn', t('withdrawnTitle'), t('withdrawnBody', { n: r.data.templates_deleted }));
  if (r.status === 404) return setError('withdraw-error', t('notEnrolled'));
  if (r.status === 429) return setError('withdraw-error', t('rateLimited'));
  return setError('withdraw-error', r.data && r.data.error ? r.data.error.message : t('failed'));
}

// ---- wiring ---------------------------------------------------------------

function setLang(lang) {
  state.lang = lang;
  localStorage.setItem('kiosk.lang', lang);
  applyLang();
  if (document.body.dataset.screen === 'consent') showConsent();
}

async function boot() {
  applyLang();
  $('lang-zh').addEventListener('click', () => setLang('zh'));
  $('lang-en').addEventListener('click', () => setLang('en'));
  $('provision-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    localStorage.setItem('kiosk.token', $('provision-token').value.trim());
    $('provision-token').value = '';
    await boot2();
  });
  $('btn-enroll').addEventListener('click', () => show('start'));
  $('btn-withdraw').addEventListener('click', () => show('withdraw'));
  $('start-form').addEventListener('submit', startEnrollment);
  $('start-cancel').addEventListener('click', home);
  $('btn-agree').addEventListener('click', agree);
  $('btn-decline').addEventListener('click', abandon);
  $('capture-cancel').addEventListener('click', abandon);
  $('btn-liveness-retry').addEventListener('click', () => liveness(state.run));
  $('withdraw-form').addEventListener('submit', withdraw);
  $('withdraw-cancel').addEventListener('click', home);
  $('result-done').addEventListener('click', home);
  await boot2();
}

// boot2 checks the token against the API before showing the home screen.
async function boot2() {
  state.token = readToken();
  if (!state.token) return provision('');
  const r = await api('GET', '/v1/consent-text');
  if (r.status === 401) return; // provision() already showed the reason
  if (r.status !== 200) return result('error', t('failed'), r.data && r.data.error ? r.data.error.message : '');
  home();
}

boot();
