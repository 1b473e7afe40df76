// Tessera's viewer page: the slide list, OpenSeadragon over the gateway's IIIF service with
// per-channel rendering (on/off, colour, window), a scale bar, the cursor's position and raw
// values, and live refresh while a slide is acquired.
//
// Talks only to the gateway that serves it, with paths relative to the page (so it also
// works behind a proxy under a prefix):
//   api/slides, api/slides/{id}, api/slides/{id}/display, api/slides/{id}/pixel?x=&y=,
//   api/slides/{id}/events (Server-Sent Events), iiif/3/{id}/info.json and its image URLs
//   with ?channels=..&window{c}=min,max&color{c}=rrggbb[&view=fused][&v=N].
//
// For tests and scripts, window.tessera exposes the state (see `hook` below); controls
// have stable ids: #slide-{id}, #channel-{c}-on, #channel-{c}-color, #channel-{c}-min,
// #channel-{c}-max (sliders) and #channel-{c}-min-value, #channel-{c}-max-value (numbers),
// #view-select, #corrected-toggle (shown when the slide has corrections), #z-slider, #z-value, #xz-view, #neuroglancer-link, #scalebar-label, #cursor-px,
// #cursor-um, #cursor-values.
'use strict';

(() => {
  const OSD = window.OpenSeadragon;
  const $ = (id) => document.getElementById(id);

  const LIVE_REFRESH_MS = 1000;    // at most one refresh of the picture per second while live
  const SLIDES_POLL_MS = 5000;     // the slide list, while the page is visible
  const PIXEL_THROTTLE_MS = 120;   // at most one /pixel request in flight, and this far apart
  const SETTINGS_DEBOUNCE_MS = 150;
  const SWAP_TIMEOUT_MS = 10000;   // show a new rendering even if it never becomes complete

  // ---- the hook for tests

  function deferred() {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => {});  // a rejection nobody waits for is not an error of the page
    return { promise, resolve, reject };
  }

  let readyDeferred = deferred();
  let idleWaiters = [];

  /**
   * window.tessera:
   *   slide      the selected slide's id (null: none)
   *   state      'idle' (no slide) | 'loading' | 'ready' (first tiles drawn) | 'error'
   *   error      the last error's message, or null
   *   ready      a Promise resolved when the selected slide's first tiles are drawn (replaced
   *              when another slide is selected; rejected on error)
   *   isReady    true once they are
   *   drawn      how many renderings were completed and drawn (the first one, then one per
   *              change of settings or live refresh)
   *   busy       a rendering is being loaded
   *   whenIdle() a Promise resolved once no rendering is being loaded
   *   settings() the current rendering settings; query(): the query string tiles carry
   *   viewer     the OpenSeadragon viewer
   */
  const hook = {
    slide: null,
    state: 'idle',
    error: null,
    get ready() { return readyDeferred.promise; },
    isReady: false,
    drawn: 0,
    busy: false,
    tileErrors: 0,
    liveRefreshes: 0,
    pixelRequests: 0,
    sectionsAsked: 0,   // XZ sections of a volume asked for, and drawn
    sectionsDrawn: 0,
    whenIdle() {
      return hook.busy ? new Promise((resolve) => idleWaiters.push(resolve)) : Promise.resolve();
    },
    settings() { return current ? JSON.parse(JSON.stringify(current.settings)) : null; },
    query() { return current ? tileQuery() : ''; },
    viewer: null,
  };
  window.tessera = hook;

  // ---- HTTP

  const url = (path) => new URL(path, document.baseURI).href;
  const slidePath = (id) => `api/slides/${encodeURIComponent(id)}`;

  async function getJson(path, options = {}) {
    let response;
    try {
      response = await fetch(url(path), { cache: 'no-store', ...options });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new Error(`cannot reach the gateway (${path}): ${e.message}`);
    }
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const why = body && body.message ? `${body.error || response.status}: ${body.message}` : `HTTP ${response.status}`;
      const err = new Error(`${path}: ${why}`);
      err.status = response.status;
      throw err;
    }
    if (body === null) throw new Error(`${path}: the gateway's answer is not JSON`);
    return body;
  }

  // ---- status line and messages

  function setStatus(text) { $('status').textContent = text || ''; }

  function showMessage(text, kind = 'error') {
    const m = $('message');
    m.textContent = text || '';
    m.className = kind;
    m.hidden = !text;
  }

  function fail(err) {
    const text = err && err.message ? err.message : String(err);
    hook.error = text;
    hook.state = 'error';
    showMessage(text);
    readyDeferred.reject(new Error(text));
    console.error('tessera:', text);
  }

  // ---- formatting

  function formatBytes(n) {
    if (!Number.isFinite(n)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
  }

  function formatLength(um) {
    if (um >= 1000) return `${+(um / 1000).toPrecision(3)} mm`;
    if (um >= 1) return `${+um.toPrecision(3)} µm`;
    return `${+(um * 1000).toPrecision(3)} nm`;
  }

  function formatUm(v) {
    return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(1);
  }

  const hex6 = (c) => (/^#?[0-9a-fA-F]{6}$/.test(c || '') ? c.replace('#', '').toLowerCase() : 'ffffff');

  // ---- the slide list

  let slides = [];
  let slidesTimer = null;

  async function loadSlides() {
    try {
      const list = await getJson('api/slides');
      if (!Array.isArray(list)) throw new Error('api/slides: expected a JSON array');
      const changed = JSON.stringify(list) !== JSON.stringify(slides);
      slides = list;
      if (changed) renderSlideList();
      if (current) {
        // The list has the catalog's last known counts; the slide's own summary is live.
        const s = slides.find((x) => x.id === current.id);
        if (s && s.state !== current.summary.state) {
          const slide = current;
          getJson(slidePath(slide.id)).then((f) => { if (current === slide) updateSummary(f); }).catch(() => {});
        }
      }
      if (hook.error && hook.error.startsWith('cannot reach')) showMessage('');
    } catch (e) {
      setStatus(e.message);
    }
    return slides;
  }

  function renderSlideList() {
    const list = $('slide-list');
    list.replaceChildren();
    $('slides-empty').hidden = slides.length > 0;
    for (const listed of slides) {
      const s = current && current.id === listed.id ? { ...listed, ...current.summary } : listed;
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.id = `slide-${s.id}`;
      b.className = 'slide' + (current && current.id === s.id ? ' selected' : '');
      b.setAttribute('aria-pressed', current && current.id === s.id ? 'true' : 'false');
      const name = document.createElement('span');
      name.className = 'slide-name';
      name.textContent = s.name || s.id;
      const state = document.createElement('span');
      state.className = `state state-${s.state}`;
      state.textContent = s.state;
      const meta = document.createElement('span');
      meta.className = 'slide-sub';
      meta.textContent = `${s.id} · ${s.frames_written ?? '?'}/${s.frames_total ?? '?'} frames`;
      b.append(name, state, meta);
      b.addEventListener('click', () => {
        if (slideFromHash() === s.id) selectSlide(s.id);  // again, e.g. after an error
        else location.hash = `#${s.id}`;
      });
      li.append(b);
      list.append(li);
    }
  }

  // ---- the viewer

  let viewer = null;

  function makeViewer() {
    viewer = OSD({
      element: $('viewer'),
      prefixUrl: 'vendor/openseadragon/images/',
      drawer: 'canvas',            // 2D canvas: exact colours, and its pixels can be read back
      showNavigator: true,
      navigatorPosition: 'TOP_RIGHT',
      showRotationControl: false,
      maxZoomPixelRatio: 4,
      visibilityRatio: 0.2,
      blendTime: 0,
      imageLoaderLimit: 6,
      timeout: 60000,
      preserveImageSizeOnResize: true,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
    });
    hook.viewer = viewer;
    viewer.addHandler('update-viewport', drawScaleBar);
    viewer.addHandler('resize', drawScaleBar);
    viewer.addHandler('animation-finish', () => refreshSection());
    viewer.addHandler('tile-load-failed', onTileFailed);
    viewer.addHandler('add-item-failed', (e) => fail(new Error(`cannot open the image: ${e.message || 'unknown error'}`)));
    const tracker = new OSD.MouseTracker({
      element: viewer.canvas,
      moveHandler: (e) => onCursor(e.position),
      leaveHandler: () => onCursor(null),
    });
    tracker.setTracking(true);
  }

  let tileErrorShown = 0;
  function onTileFailed(e) {
    hook.tileErrors++;
    const tileUrl = e.tile && typeof e.tile.getUrl === 'function' ? e.tile.getUrl() : null;
    // Say why, once in a while: the image request's JSON error names the cause.
    if (!tileUrl || Date.now() - tileErrorShown < 3000) return;
    tileErrorShown = Date.now();
    fetch(tileUrl, { cache: 'no-store' })
      .then(async (r) => {
        if (r.ok) return;
        let why = `HTTP ${r.status}`;
        try { const j = await r.json(); why = `${j.error}: ${j.message}`; } catch (err) { /* not JSON */ }
        showMessage(`a tile failed to load (${why})`);
      })
      .catch(() => showMessage('a tile failed to load: the gateway is unreachable'));
  }

  // ---- the selected slide

  /** @type {null|{id, seq, summary, display, info, settings, defaults, liveGen, events, ...}} */
  let current = null;
  let selectSeq = 0;
  let selectAbort = null;
  let selectRetry = null;

  function closeSlide() {
    if (!current) return;
    if (current.events) current.events.close();
    clearTimeout(current.liveTimer);
    clearTimeout(current.settingsTimer);
    clearTimeout(current.swapTimer);
    current = null;
    pendingItem = null;
    hook.slide = null;
    setBusy(false);
  }

  async function selectSlide(id, retry = false) {
    if (current && current.id === id) return;
    clearTimeout(selectRetry);
    closeSlide();
    if (selectAbort) selectAbort.abort();
    selectAbort = new AbortController();
    const signal = selectAbort.signal;
    const seq = ++selectSeq;
    if (!retry) readyDeferred = deferred();
    Object.assign(hook, { slide: id, state: 'loading', error: null, isReady: false, tileErrors: 0 });
    showMessage('');
    if (!retry) setStatus(`opening ${id}…`);
    resetCursor();
    renderSlideList();
    $('slide-heading').textContent = id;
    viewer.world.removeAll();
    $('scalebar').hidden = true;
    if (!retry) $('slide-panel').hidden = true;
    try {
      const [summary, display, info] = await Promise.all([
        getJson(slidePath(id), { signal }),
        getJson(`${slidePath(id)}/display`, { signal }),
        getJson(`iiif/3/${encodeURIComponent(id)}/info.json`, { signal }),
      ]);
      if (seq !== selectSeq) return;
      const defaults = channelDefaults(display, summary);
      const views = Array.isArray(display.views) && display.views.length ? display.views : ['raw'];
      const depths = display.depths || { raw: display.depth || 1 };
      current = {
        id, seq, summary, display, info, defaults, depths,
        settings: { channels: defaults.map((c) => ({ ...c })), view: views[0], corrected: false,
                    z: Math.floor(((depths[views[0]] || 1) - 1) / 2) },
        views,
        liveGen: 0,
        events: null,
        dtypeMax: (display.dtype || summary.dtype) === 'uint8' ? 255 : 65535,
      };
      hook.slide = id;
      renderSlidePanel();
      renderSlideList();
      openImage();
      if (summary.state === 'acquiring') startLive();
      setStatus(summary.state === 'acquiring' ? 'acquiring: live' : '');
    } catch (e) {
      if (e.name === 'AbortError' || seq !== selectSeq) return;
      // A slide just opened may have nothing to show yet: wait for its first frames.
      const summary = await getJson(slidePath(id), { signal }).catch(() => null);
      if (seq !== selectSeq) return;
      if (summary && summary.state === 'acquiring') {
        setStatus(`${id}: waiting for the first frames…`);
        selectRetry = setTimeout(() => { if (seq === selectSeq) selectSlide(id, true); }, 2000);
        return;
      }
      setStatus('');
      fail(e);
    }
  }

  function channelDefaults(display, summary) {
    return (display.channels || []).map((c, i) => ({
      index: c.index ?? i,
      name: c.name ?? (summary.channels || [])[i] ?? `ch${i}`,
      on: c.on !== false,
      min: Math.round(c.min ?? 0),
      max: Math.round(c.max ?? 65535),
      color: hex6(c.color),
    }));
  }

  // While a slide is acquired its default windows follow the data seen so far (a channel with
  // no frame yet has none): channels whose window or colour the user left alone follow them.
  // True when the rendering changed.
  async function followDefaults(slide) {
    const display = await getJson(`${slidePath(slide.id)}/display`);
    if (current !== slide) return false;
    const fresh = channelDefaults(display, slide.summary);
    let changed = false;
    fresh.forEach((d, i) => {
      const old = slide.defaults[i], now = slide.settings.channels[i];
      if (!old || !now) return;
      if (now.min === old.min && now.max === old.max && (d.min !== old.min || d.max !== old.max)) {
        now.min = d.min;
        now.max = d.max;
        setWindowInputs(i);
        changed = true;
      }
      if (now.color === old.color && d.color !== old.color) {
        now.color = d.color;
        $(`channel-${i}-color`).value = `#${d.color}`;
        changed = true;
      }
      slide.defaults[i] = d;
    });
    slide.display = { ...slide.display, ...display };
    return changed;
  }

  function updateSummary(summary) {
    if (!current) return;
    const was = current.summary.state;
    current.summary = summary;
    renderMeta();
    if (was === 'acquiring' && summary.state !== 'acquiring') {
      // The last frames may have landed between two events: look once more, then stop.
      stopLive();
      markLive(current, true);
      setStatus(summary.state === 'failed' ? 'acquisition failed' : '');
    }
  }

  // ---- the slide panel: metadata, view, channels

  function renderMeta() {
    const s = current.summary, d = current.display;
    const px = d.pixel_size_um || s.pixel_size_um || [];
    const rows = [
      ['name', s.name],
      ['id', s.id],
      ['state', s.state],
      ['frames', `${s.frames_written ?? '?'} / ${s.frames_total ?? '?'}`],
      ['tiles', s.shape ? `${s.shape.tiles} × ${s.shape.channels} ch × ${s.shape.z} z` : (s.tiles || []).length],
      ['mosaic', `${d.width} × ${d.height} px` + (px[0] > 0 ? ` (${formatLength(d.width * px[0])} × ${formatLength(d.height * (px[1] || px[0]))})` : '')],
      ['pixel', px[0] > 0 ? `${px[0]} × ${px[1] ?? px[0]} µm` : 'unknown'],
      ['levels', d.levels],
      ['dtype', s.dtype],
      ['stored', formatBytes(s.bytes_stored)],
      ['created', s.created_unix_ms ? new Date(s.created_unix_ms).toLocaleString() : '–'],
    ];
    const dl = $('slide-meta');
    dl.replaceChildren();
    for (const [k, v] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v ?? '–';
      if (k === 'state') dd.className = `state state-${s.state}`;
      dl.append(dt, dd);
    }
    $('slide-heading').textContent = `${s.name || s.id} (${s.id}, ${s.state})`;
  }

  function renderSlidePanel() {
    $('slide-panel').hidden = false;
    renderMeta();
    // View: offered only when the gateway has more than one.
    const select = $('view-select');
    select.replaceChildren();
    for (const v of current.views) {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = v;
      select.append(o);
    }
    select.value = current.settings.view;
    $('view-row').hidden = current.views.length < 2;
    // Corrections: offered when a stitch estimated them (the raw view's fields corrected as read).
    $('corrected-row').hidden = !(Array.isArray(current.summary.corrections) && current.summary.corrections.length);
    $('corrected-toggle').checked = current.settings.corrected;
    renderDepth();
    renderChannels();
  }

  // ---- volumes: a z slider, the XZ section beside the image, Neuroglancer in 3-D

  function depth() { return current ? current.depths[current.settings.view] || 1 : 1; }

  function renderDepth() {
    const d = depth();
    const volume = d > 1;
    $('z-row').hidden = !volume;
    $('xz-panel').hidden = !volume;
    $('neuroglancer-row').hidden = !volume;
    if (!volume) return;
    current.settings.z = Math.min(current.settings.z, d - 1);
    const slider = $('z-slider');
    slider.max = String(d - 1);
    slider.value = String(current.settings.z);
    $('z-value').textContent = `${current.settings.z} / ${d - 1}`;
    const view = current.settings.view !== 'raw' ? `:${current.settings.view}` : '';
    const source = new URL(`precomputed/${encodeURIComponent(current.id + view)}`, location.href).href;
    // Channel 0's window as Neuroglancer's default shader takes it (its range is the dtype's).
    const c0 = current.settings.channels[0] || { min: 0, max: current.dtypeMax };
    const state = { layers: [{ type: 'image', source: `precomputed://${source}`, name: current.id + view,
                               shaderControls: { normalized: { range: [c0.min, c0.max] } } }],
                    layout: '4panel' };
    $('neuroglancer-link').href = `vendor/neuroglancer/index.html#!${encodeURIComponent(JSON.stringify(state))}`;
  }

  // The XZ section through the row at the middle of what is shown, in the current rendering.
  function refreshSection() {
    if (!current || depth() <= 1) return;
    const d = current.display;
    let row = Math.floor(d.height / 2);
    const item = shownItem();
    if (item) {
      const c = item.viewportToImageCoordinates(viewer.viewport.getCenter(true));
      row = Math.min(d.height - 1, Math.max(0, Math.floor(c.y)));
    }
    const img = $('xz-view');
    const url = `${slidePath(current.id)}/section.png?y=${row}&${tileQuery().replace(/(^|&)z=\d+/, '')}`;
    if (img.dataset.url === url) return;
    img.dataset.url = url;
    hook.sectionsAsked++;
    img.onload = () => { if (img.dataset.url === url) { hook.sectionsDrawn++; $('xz-label').textContent = `XZ section at y ${row}`; } };
    img.src = url;
  }

  function sliderMax(c) {
    // Most 16-bit data lives far below 65535: a range of about twice the default window's
    // top keeps the sliders useful; the number fields take anything up to the dtype's top.
    const top = Math.max(c.max * 2, 255);
    const p = 10 ** Math.floor(Math.log10(top));
    return Math.min(current.dtypeMax, Math.ceil(top / p) * p);
  }

  function renderChannels() {
    const box = $('channels');
    box.replaceChildren();
    current.settings.channels.forEach((c, i) => {
      const row = document.createElement('div');
      row.className = 'channel';
      row.id = `channel-${i}`;
      const top = sliderMax(c);
      row.innerHTML = `
        <div class="channel-head">
          <input type="checkbox" id="channel-${i}-on">
          <label for="channel-${i}-on" class="channel-name"></label>
          <input type="color" id="channel-${i}-color" title="colour">
        </div>
        <div class="window">
          <label for="channel-${i}-min">min</label>
          <input type="range" id="channel-${i}-min" min="0" max="${top}" step="1">
          <input type="number" id="channel-${i}-min-value" min="0" max="${current.dtypeMax}" step="1">
          <label for="channel-${i}-max">max</label>
          <input type="range" id="channel-${i}-max" min="0" max="${top}" step="1">
          <input type="number" id="channel-${i}-max-value" min="0" max="${current.dtypeMax}" step="1">
        </div>`;
      row.querySelector('.channel-name').textContent = c.name;
      box.append(row);
      const on = $(`channel-${i}-on`), color = $(`channel-${i}-color`);
      on.checked = c.on;
      color.value = `#${c.color}`;
      setWindowInputs(i);
      on.addEventListener('change', () => { c.on = on.checked; settingsChanged(0); });
      color.addEventListener('input', () => { c.color = hex6(color.value); settingsChanged(SETTINGS_DEBOUNCE_MS); });
      for (const end of ['min', 'max']) {
        const slider = $(`channel-${i}-${end}`), number = $(`channel-${i}-${end}-value`);
        slider.addEventListener('input', () => setWindow(i, end, +slider.value));
        number.addEventListener('change', () => setWindow(i, end, +number.value));
      }
    });
  }

  function setWindowInputs(i) {
    const c = current.settings.channels[i];
    for (const end of ['min', 'max']) {
      const slider = $(`channel-${i}-${end}`);
      if (c[end] > +slider.max) { slider.max = String(c[end]); $(`channel-${i}-${end === 'min' ? 'max' : 'min'}`).max = String(c[end]); }
      slider.value = String(c[end]);
      $(`channel-${i}-${end}-value`).value = String(c[end]);
    }
  }

  function setWindow(i, end, value) {
    const c = current.settings.channels[i];
    if (!Number.isFinite(value)) return setWindowInputs(i);
    value = Math.max(0, Math.min(current.dtypeMax, Math.round(value)));
    c[end] = value;
    // Keep min < max by pushing the other end.
    if (end === 'min' && c.max <= c.min) c.max = Math.min(current.dtypeMax, c.min + 1);
    if (end === 'max' && c.min >= c.max) c.min = Math.max(0, c.max - 1);
    if (c.max <= c.min) c.min = c.max - 1;
    setWindowInputs(i);
    settingsChanged(SETTINGS_DEBOUNCE_MS);
  }

  function settingsChanged(delayMs) {
    if (!current) return;
    clearTimeout(current.settingsTimer);
    setBusy(true);  // a test that changed a setting waits for it to be drawn
    const slide = current;
    slide.settingsTimer = setTimeout(() => {
      slide.settingsTimer = null;
      refreshImage('settings');
    }, delayMs);
  }

  function tileQuery() {
    const s = current.settings;
    const parts = [`channels=${s.channels.map((c, i) => (c.on ? i : null)).filter((i) => i !== null).join(',')}`];
    s.channels.forEach((c, i) => {
      parts.push(`window${i}=${c.min},${c.max}`, `color${i}=${c.color}`);
    });
    if (s.view && s.view !== 'raw' && current.views.length > 1) parts.push(`view=${encodeURIComponent(s.view)}`);
    if (depth() > 1) parts.push(`z=${s.z}`);
    if (s.corrected && (!s.view || s.view === 'raw')) parts.push('corrected=1');
    if (current.liveGen > 0) parts.push(`v=${current.liveGen}`);  // new pixels: not the cached tiles
    return parts.join('&');
  }

  // ---- the image: a IIIF tile source whose tile URLs carry the rendering settings

  let pendingItem = null;

  function makeTileSource(query) {
    const info = JSON.parse(JSON.stringify(current.info));
    // The service's own address, relative to this page: right behind proxies and whatever
    // Host the gateway saw.
    const id = url(`iiif/3/${encodeURIComponent(current.id)}`);
    delete info['@id'];
    info.id = id;
    const options = OSD.IIIFTileSource.prototype.configure(info, `${id}/info.json`, null);
    options.ready = true;
    const source = new OSD.IIIFTileSource(options);
    const iiifUrl = OSD.IIIFTileSource.prototype.getTileUrl;
    source.getTileUrl = function (level, x, y) {
      return `${iiifUrl.call(this, level, x, y)}?${query}`;
    };
    return source;
  }

  function setBusy(busy) {
    hook.busy = busy;
    if (!busy) {
      const waiters = idleWaiters;
      idleWaiters = [];
      waiters.forEach((w) => w());
    }
  }

  function afterNextDraw(fn) {
    // Fully loaded tiles are drawn at the next animation frame: wait for two.
    requestAnimationFrame(() => requestAnimationFrame(fn));
  }

  function whenFullyLoaded(item, timeoutMs) {
    return new Promise((resolve) => {
      if (item.getFullyLoaded()) return resolve(true);
      let timer = null;
      const handler = (e) => {
        if (!e.fullyLoaded) return;
        clearTimeout(timer);
        item.removeHandler('fully-loaded-change', handler);
        resolve(true);
      };
      item.addHandler('fully-loaded-change', handler);
      if (timeoutMs) {
        timer = setTimeout(() => { item.removeHandler('fully-loaded-change', handler); resolve(false); }, timeoutMs);
      }
    });
  }

  // The first rendering of a slide: shown as its tiles arrive.
  function openImage() {
    const slide = current;
    setBusy(true);
    viewer.addTiledImage({
      tileSource: makeTileSource(tileQuery()),
      success: ({ item }) => {
        if (current !== slide) { viewer.world.removeItem(item); return; }
        viewer.viewport.goHome(true);
        drawScaleBar();
        whenFullyLoaded(item).then(() => afterNextDraw(() => {
          if (current !== slide) return;
          hook.drawn++;
          hook.state = 'ready';
          refreshSection();
          hook.isReady = true;
          setBusy(!!pendingItem || !!slide.settingsTimer);
          readyDeferred.resolve(slide.id);
        }));
      },
      error: (e) => { if (current === slide) fail(new Error(`cannot open ${slide.id}: ${e.message || 'tile source error'}`)); },
    });
  }

  // A new rendering (settings changed, or new pixels landed): loaded hidden, then shown in
  // one go over the old one, which is then dropped: no flicker, no blurry intermediate.
  function refreshImage(reason) {
    if (!current) return;
    const slide = current;
    if (reason === 'live') slide.liveGen++;
    if (pendingItem) { viewer.world.removeItem(pendingItem); pendingItem = null; }
    clearTimeout(slide.swapTimer);
    setBusy(true);
    viewer.addTiledImage({
      tileSource: makeTileSource(tileQuery()),
      opacity: 0,
      preload: true,
      success: ({ item }) => {
        if (current !== slide) { viewer.world.removeItem(item); return; }
        pendingItem = item;
        whenFullyLoaded(item, SWAP_TIMEOUT_MS).then(() => {
          if (pendingItem !== item) return;  // overtaken by a newer rendering
          pendingItem = null;
          item.setOpacity(1);
          for (let i = viewer.world.getItemCount() - 1; i >= 0; i--) {
            const other = viewer.world.getItemAt(i);
            if (other !== item) viewer.world.removeItem(other);
          }
          afterNextDraw(() => {
            if (current !== slide) return;
            hook.drawn++;
            refreshSection();
            if (reason === 'live') hook.liveRefreshes++;
            if (!pendingItem && !slide.settingsTimer) setBusy(false);
          });
        });
      },
      error: (e) => {
        if (current !== slide) return;
        setBusy(false);
        showMessage(`cannot show the new rendering: ${e.message || 'tile source error'}`);
      },
    });
  }

  function shownItem() {
    const n = viewer.world.getItemCount();
    for (let i = n - 1; i >= 0; i--) {
      const item = viewer.world.getItemAt(i);
      if (item !== pendingItem) return item;
    }
    return n ? viewer.world.getItemAt(0) : null;
  }

  // ---- scale bar

  function drawScaleBar() {
    const item = shownItem();
    const bar = $('scalebar');
    if (!current || !item) { bar.hidden = true; return; }
    const screenPerImagePx = item.viewportToImageZoom(viewer.viewport.getZoom(true));
    if (!(screenPerImagePx > 0)) { bar.hidden = true; return; }
    const px = current.display.pixel_size_um || current.summary.pixel_size_um || [];
    const umPerImagePx = px[0] > 0 ? px[0] : null;
    const unitPerScreenPx = (umPerImagePx || 1) / screenPerImagePx;
    // The longest 1, 2 or 5 x 10^k that fits in 150 screen pixels.
    const target = 150 * unitPerScreenPx;
    const p = 10 ** Math.floor(Math.log10(target));
    const nice = [5, 2, 1].map((m) => m * p).find((v) => v <= target) || p;
    $('scalebar-bar').style.width = `${Math.max(1, Math.round(nice / unitPerScreenPx))}px`;
    $('scalebar-label').textContent = umPerImagePx ? formatLength(nice) : `${+nice.toPrecision(3)} px`;
    bar.hidden = false;
  }

  // ---- cursor: position at once, raw values throttled

  let cursorWanted = null;   // {x, y} level-0 pixel wanted
  let cursorInFlight = false;
  let cursorLastSent = 0;
  let cursorTimer = null;

  function resetCursor() {
    cursorWanted = null;
    $('cursor-px').textContent = '–';
    $('cursor-um').textContent = '–';
    $('cursor-values').textContent = '–';
  }

  function onCursor(position) {
    const item = shownItem();
    if (!position || !current || !item) {
      cursorWanted = null;
      return;
    }
    const img = item.viewportToImageCoordinates(viewer.viewport.pointFromPixel(position, true));
    const x = Math.floor(img.x), y = Math.floor(img.y);
    const d = current.display;
    $('cursor-px').textContent = `x ${x}, y ${y}`;
    const px = d.pixel_size_um || current.summary.pixel_size_um || [];
    $('cursor-um').textContent = px[0] > 0
      ? `x ${formatUm(x * px[0])}, y ${formatUm(y * (px[1] || px[0]))}` : 'pixel size unknown';
    if (x < 0 || y < 0 || x >= d.width || y >= d.height) {
      cursorWanted = null;
      $('cursor-values').textContent = 'outside the mosaic';
      return;
    }
    cursorWanted = { x, y, slide: current.id };
    pumpCursor();
  }

  function pumpCursor() {
    if (cursorInFlight || !cursorWanted || cursorTimer) return;
    const wait = cursorLastSent + PIXEL_THROTTLE_MS - Date.now();
    if (wait > 0) {
      cursorTimer = setTimeout(() => { cursorTimer = null; pumpCursor(); }, wait);
      return;
    }
    const want = cursorWanted;
    cursorWanted = null;
    cursorInFlight = true;
    cursorLastSent = Date.now();
    hook.pixelRequests++;
    const view = current && current.settings.view !== 'raw' && current.views.length > 1 ? `&view=${encodeURIComponent(current.settings.view)}` : '';
    getJson(`${slidePath(want.slide)}/pixel?x=${want.x}&y=${want.y}${view}`)
      .then((r) => {
        if (!current || current.id !== want.slide) return;
        showValues(r.values || []);
      })
      .catch((e) => {
        if (current && current.id === want.slide) $('cursor-values').textContent = e.status === 400 ? 'outside the mosaic' : e.message;
      })
      .finally(() => { cursorInFlight = false; pumpCursor(); });
  }

  function showValues(values) {
    const box = $('cursor-values');
    box.replaceChildren();
    values.forEach((v, i) => {
      const c = current.settings.channels[i];
      if (i) box.append(' ');
      const span = document.createElement('span');
      span.className = 'value';
      const swatch = document.createElement('i');
      swatch.style.background = `#${c ? c.color : 'ffffff'}`;
      span.append(swatch, `${c ? c.name : `ch${i}`} ${v}`);
      box.append(span);
    });
    if (!values.length) box.textContent = 'no values';
  }

  // ---- live: refresh the picture as frames land

  function startLive() {
    const slide = current;
    const es = new EventSource(url(`${slidePath(slide.id)}/events`));
    slide.events = es;
    slide.liveDirty = false;
    slide.lastLive = 0;
    let opened = false;
    es.onopen = () => {
      // Events missed while (re)connecting are not replayed: look again.
      if (opened) markLive(slide, true);
      opened = true;
    };
    es.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (current !== slide) return;
      const frames = [...(e.landed || []), ...(e.levels || [])];
      markLive(slide, frames.length === 0 || frames.some((f) => frameVisible(slide, f)));
      if (e.closed) {
        stopLive();
        markLive(slide, true);  // a last look at the pixels and the summary
      }
    };
    es.onerror = () => {
      if (current !== slide) return;
      // The browser reconnects by itself; stop if the slide is no longer acquired.
      getJson(slidePath(slide.id)).then((s) => {
        if (current === slide) updateSummary(s);
      }).catch(() => setStatus('acquiring: live (reconnecting…)'));
    };
  }

  function stopLive() {
    if (current && current.events) {
      current.events.close();
      current.events = null;
    }
  }

  // A frame's index is (t·C + c)·Z + z: its field of view is t.
  function frameVisible(slide, frame) {
    const item = shownItem();
    const shape = slide.summary.shape || {};
    const perTile = Math.max(1, (shape.channels || 1) * (shape.z || 1));
    const tile = (slide.summary.tiles || [])[Math.floor(frame / perTile)];
    if (!item || !tile) return true;
    const view = item.viewportToImageRectangle(viewer.viewport.getBounds(true));
    const w = tile.width ?? shape.width, h = tile.height ?? shape.height;
    return tile.x < view.x + view.width && tile.x + w > view.x && tile.y < view.y + view.height && tile.y + h > view.y;
  }

  function markLive(slide, visible) {
    if (current !== slide) return;
    if (visible) slide.liveDirty = true;
    if (slide.liveTimer) return;
    const wait = Math.max(0, slide.lastLive + LIVE_REFRESH_MS - Date.now());
    slide.liveTimer = setTimeout(async () => {
      if (current !== slide) return;
      slide.lastLive = Date.now();
      const pixels = slide.liveDirty;
      slide.liveDirty = false;
      const defaultsChanged = await followDefaults(slide).catch(() => false);
      if (current !== slide) return;
      slide.liveTimer = null;  // events from here on arm the next round
      if (pixels || defaultsChanged) refreshImage('live');
      getJson(slidePath(slide.id)).then((s) => { if (current === slide) updateSummary(s); }).catch(() => {});
      loadSlides();
    }, wait);
  }

  // ---- start

  function slideFromHash() {
    const id = decodeURIComponent(location.hash.replace(/^#/, ''));
    return id || null;
  }

  async function start() {
    if (!OSD) {
      fail(new Error('OpenSeadragon is missing: vendor/openseadragon/openseadragon.min.js was not built (run `npm ci && npm run build` in web/)'));
      return;
    }
    makeViewer();
    $('slides-reload').addEventListener('click', loadSlides);
    $('channels-reset').addEventListener('click', () => {
      if (!current) return;
      current.settings.channels = current.defaults.map((c) => ({ ...c }));
      renderChannels();
      settingsChanged(0);
    });
    $('view-select').addEventListener('change', () => {
      if (!current) return;
      current.settings.view = $('view-select').value;
      renderDepth();
      settingsChanged(0);
    });
    $('corrected-toggle').addEventListener('change', () => {
      if (!current) return;
      current.settings.corrected = $('corrected-toggle').checked;
      settingsChanged(0);
    });
    $('z-slider').addEventListener('input', () => {
      if (!current) return;
      current.settings.z = Number($('z-slider').value);
      $('z-value').textContent = `${current.settings.z} / ${depth() - 1}`;
      settingsChanged(150);
    });
    window.addEventListener('hashchange', () => {
      const id = slideFromHash();
      if (id) selectSlide(id);
    });
    await loadSlides();
    const wanted = slideFromHash();
    if (wanted) {
      selectSlide(wanted);
    } else if (slides.length) {
      // No slide asked for: the newest, and say so in the address so that it can be shared.
      const newest = slides.reduce((a, b) => ((b.created_unix_ms || 0) >= (a.created_unix_ms || 0) ? b : a));
      history.replaceState(null, '', `#${newest.id}`);
      selectSlide(newest.id);
    }
    slidesTimer = setInterval(() => { if (!document.hidden) loadSlides(); }, SLIDES_POLL_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
