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
const LIVENESS_MIN_EVERY_MS = 200;
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
  for (const f of ['start-form', 'withdraw-form', 'supervisor-form']) $(f).reset();
  for (const e of ['start-error', 'consent-error', 'capture-error', 'withdraw-error']) setError(e, '');
  for (const e of ['supervisor-form', 'wd-camera', 'wd-instruction', 'wd-steps', 'liveness-steps']) $(e).hidden = true;
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
  // The member of staff signs with their own name and password: the
  // daemon checks it, so the record says who really vouched.
  const body = {
    customer_id: $('start-customer').value.trim(),
    display_name: $('start-name').value.trim(),
    staff: { name: $('start-staff').value.trim(), password: $('start-staff-password').value },
    reference: $('start-reference').value.trim(),
  };
  $('start-staff-password').value = '';
  if (!body.staff.name || !body.staff.password) return setError('start-error', t('needVerifier'));
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
  // Every customer chooses afresh: the narrower scope is preselected.
  document.querySelector('input[name="scope"][value="branch"]').checked = true;
  show('consent');
}

async function agree() {
  const c = state.consent;
  const r = await api('POST', `/v1/enrollments/${state.session}/consent`, {
    text_version: c.version, language: c.language, sha256: c.sha256, accepted: true,
    scope: document.querySelector('input[name="scope"]:checked').value,
  });
  if (r.code === 'stale_consent_text') return showConsent();
  if (r.status !== 200) return failure(r);
  await capture();
}

// openCamera shows the camera in the video element id (the enrollment's or
// the withdrawal's).
async function openCamera(id = 'capture-video') {
  const video = $(id);
  if (state.stream && video.srcObject === state.stream) return true;
  stopStream();
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: 'user' }, audio: false,
    });
  } catch {
    setError(id === 'wd-video' ? 'withdraw-error' : 'capture-error', t('cameraError'));
    return false;
  }
  video.srcObject = state.stream;
  await video.play().catch(() => {});
  while (video.videoWidth === 0) await sleep(50);
  return true;
}

function stopStream() {
  if (state.stream) for (const tr of state.stream.getTracks()) tr.stop();
  state.stream = null;
  $('capture-video').srcObject = null;
  $('wd-video').srcObject = null;
}

function stopCamera() {
  state.run++;
  stopStream();
}

// grab returns the camera's current frame as a JPEG.
function grab(id = 'capture-video') {
  const video = $(id);
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

// showSteps lists a challenge's turns, in order, as the customer moves.
function showSteps(id, steps) {
  const ol = $(id);
  ol.replaceChildren();
  for (const step of steps) {
    const li = document.createElement('li');
    li.textContent = t(`step.${step}`);
    li.dataset.step = step;
    ol.append(li);
  }
  ol.hidden = false;
}

// film follows a challenge: the customer gets ready facing the camera,
// then turns as the steps say while the page takes LIVENESS_FRAMES frames
// over the challenge's seconds. It returns the form, or null when the
// screen was left.
async function film(run, challenge, video, instr, stepsId) {
  showSteps(stepsId, challenge.steps);
  instr.hidden = false;
  instr.textContent = t('livenessWait');
  await sleep(LIVENESS_GET_READY_MS);
  if (run !== state.run) return null;
  instr.textContent = t('livenessGo');
  const every = Math.max(LIVENESS_MIN_EVERY_MS, Math.round((challenge.seconds * 1000) / LIVENESS_FRAMES));
  const form = new FormData();
  for (let i = 0; i < LIVENESS_FRAMES; i++) {
    form.append('frame', await grab(video), `frame${i}.jpg`);
    await sleep(every);
    if (run !== state.run) return null;
  }
  instr.textContent = t('livenessChecking');
  return form;
}

// liveness asks the server for this attempt's challenge and films the
// customer following it. The camera restarts after the challenge is on
// screen, so every frame sent was taken after the customer saw the steps
// (and a recorded test camera starts its clip at the same point).
async function liveness(run) {
  const sid = state.session;
  $('btn-liveness-retry').hidden = true;
  document.body.dataset.liveness = 'pending';
  $('liveness-state').textContent = t('pending');
  guide('face_camera');
  const c = await api('POST', `/v1/enrollments/${sid}/liveness/challenge`);
  if (run !== state.run) return;
  if (c.status !== 201) return failure(c);
  stopStream();
  if (!(await openCamera())) return;
  if (run !== state.run) return;
  const form = await film(run, c.data, 'capture-video', $('liveness-instruction'), 'liveness-steps');
  if (!form) return;
  const r = await api('POST', `/v1/enrollments/${sid}/liveness`, form);
  if (run !== state.run) return;
  $('liveness-steps').hidden = true;
  if (r.status === 200) {
    document.body.dataset.liveness = 'passed';
    $('liveness-state').textContent = t('passed');
    $('liveness-instruction').hidden = true;
    return finish();
  }
  if (r.code === 'liveness_failed') {
    document.body.dataset.liveness = 'failed';
    const d = r.data.error.detail;
    guide(d.hint);
    $('liveness-instruction').textContent = t(`hint.${d.hint}`);
    // Not "pending": the customer sees the try failed and how many remain
    // (the span has no data-i18n, so a language switch keeps this).
    $('liveness-state').textContent = t('failedTriesLeft', { n: d.liveness_attempts_left });
    $('liveness-state').dataset.triesLeft = d.liveness_attempts_left;
    if (d.liveness_attempts_left > 0) {
      $('btn-liveness-retry').hidden = false;
      return;
    }
    return result('liveness_failed', t('tooManyAttempts'), '');
  }
  return failure(r);
}

// finish stores the enrollment; a customer number already on file with
// another face needs a supervisor, who signs on this screen.
async function finish(supervisor) {
  const r = await api('POST', `/v1/enrollments/${state.session}/finish`, supervisor ? { supervisor } : undefined);
  if (r.status === 201) return result('enrolled', t('enrolledTitle'), t('enrolledBody'));
  if (r.code === 'supervisor_required' || r.code === 'staff_unauthorized' || r.status === 429) {
    stopStream();
    $('supervisor-form').hidden = false;
    document.body.dataset.outcome = 'supervisor';
    return setError('capture-error', r.data && r.data.error ? r.data.error.message : t('failed'));
  }
  return failure(r);
}

async function approve(ev) {
  ev.preventDefault();
  const supervisor = { name: $('sup-name').value.trim(), password: $('sup-password').value };
  $('sup-password').value = '';
  setError('capture-error', t('starting'));
  await finish(supervisor);
}

// ---- withdrawal -----------------------------------------------------------

// withdrawWith sends the withdrawal with an access token or a supervisor.
async function withdrawWith(id, proof) {
  const r = await api('POST', `/v1/customers/${encodeURIComponent(id)}/withdraw`, { confirm: true, ...proof });
  if (r.status === 200) return result('withdrawn', t('withdrawnTitle'), t('withdrawnBody', { n: r.data.templates_deleted }));
  if (r.status === 404) return setError('withdraw-error', t('notEnrolled'));
  if (r.status === 429) return setError('withdraw-error', t('rateLimited'));
  return setError('withdraw-error', r.data && r.data.error ? r.data.error.message : t('failed'));
}

// withdraw: a supervisor signs for a customer who is not present.
async function withdraw(ev) {
  ev.preventDefault();
  const id = $('wd-customer').value.trim();
  const supervisor = { name: $('wd-staff').value.trim(), password: $('wd-password').value };
  $('wd-password').value = '';
  if (!$('wd-confirm').checked) return setError('withdraw-error', t('needConfirm'));
  if (!supervisor.name || !supervisor.password) return setError('withdraw-error', t('needSupervisor'));
  await withdrawWith(id, { supervisor });
}

// withdrawByFace: the customer proves they are present by following a
// challenge; the server answers the same for every customer number until
// the face matches.
async function withdrawByFace() {
  const id = $('wd-customer').value.trim();
  if (!$('wd-confirm').checked) return setError('withdraw-error', t('needConfirm'));
  if (!id) return setError('withdraw-error', t('notEnrolled'));
  setError('withdraw-error', '');
  const run = ++state.run;
  const c = await api('POST', `/v1/customers/${encodeURIComponent(id)}/challenge`);
  if (run !== state.run) return;
  if (c.status !== 201) return setError('withdraw-error', c.status === 429 ? t('rateLimited') : t('failed'));
  $('wd-camera').hidden = false;
  stopStream();
  if (!(await openCamera('wd-video'))) return;
  const form = await film(run, c.data, 'wd-video', $('wd-instruction'), 'wd-steps');
  if (!form) return;
  const a = await api('POST', `/v1/customers/${encodeURIComponent(id)}/access`, form);
  if (run !== state.run) return;
  stopStream();
  $('wd-camera').hidden = true;
  $('wd-steps').hidden = true;
  $('wd-instruction').hidden = true;
  if (a.status !== 200) return setError('withdraw-error', a.code === 'not_present' ? t('notPresent') : t('failed'));
  await withdrawWith(id, { access_token: a.data.access_token });
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
  $('btn-wd-face').addEventListener('click', withdrawByFace);
  $('supervisor-form').addEventListener('submit', approve);
  $('withdraw-cancel').addEventListener('click', home);
  $('result-done').addEventListener('click', home);
  // Staff provisioning an open page add #token=… to its address: that is
  // a hash change, not a load, so it is read here (and removed again).
  window.addEventListener('hashchange', async () => {
    if (!/token=/.test(location.hash)) return;
    if (state.session) await abandon();
    stopCamera();
    await boot2();
  });
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
