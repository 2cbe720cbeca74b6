// fleetcore dashboard: the live map (dashboard) and the device page
// (track, trips). Served by fleetcore itself (core/api/static); it talks
// only to fleetcore's own API, with the session cookie of the page.
(function () {
  'use strict';

  var COLORS = {
    good: '#1f8a4c', warn: '#b7791f', bad: '#c0392b', none: '#8a93a3',
    pass: '#1f8a4c', fail: '#c0392b', unchecked: '#8a93a3'
  };
  var POLL_POSITIONS_MS = 10000;
  var POLL_PAGE_MS = 30000;

  function band(score) {
    if (score === null || score === undefined) { return 'none'; }
    if (score >= 90) { return 'good'; }
    return score >= 60 ? 'warn' : 'bad';
  }

  function ageText(sec) {
    if (sec === null || sec === undefined || isNaN(sec)) { return 'never'; }
    if (sec < 0) { return 'in the future'; }
    if (sec < 60) { return Math.round(sec) + 's ago'; }
    if (sec < 3600) { return Math.floor(sec / 60) + 'm ago'; }
    if (sec < 48 * 3600) { return Math.floor(sec / 3600) + 'h ago'; }
    return Math.floor(sec / 86400) + 'd ago';
  }

  function escapeHTML(s) {
    return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') { e.textContent = attrs[k]; } else if (k === 'className') { e.className = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); } });
    return e;
  }

  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) { throw new Error(r.status + ' ' + (body.error || r.statusText)); }
        return body;
      });
    });
  }

  function utc(ts) {
    if (!ts) { return ''; }
    return String(ts).replace('T', ' ').replace(/(\.\d+)?Z$/, '');
  }

  function devicePath(id) { return '/devices/' + encodeURIComponent(id); }

  // A map with the tile layer of api.map_tiles, or none: a plain
  // background that needs no network.
  function baseMap(div) {
    var map = L.map(div, { worldCopyJump: true, zoomSnap: 1 });
    map.attributionControl.setPrefix('Leaflet');
    if (div.dataset.tiles) {
      L.tileLayer(div.dataset.tiles, { maxZoom: 19, subdomains: 'abc', attribution: escapeHTML(div.dataset.attribution || '') }).addTo(map);
    }
    L.control.scale({ imperial: false }).addTo(map);
    map.setView([20, 0], 2);
    return map;
  }

  // Positions at (0,0) or without a valid fix are drawn, but the view
  // fits the others when there are any.
  function plausible(p) { return p.valid !== false && !(Math.abs(p.lat) < 1e-4 && Math.abs(p.lon) < 1e-4); }

  // ---- dashboard: the live map and the refreshing page ----

  function dashboard() {
    var div = document.getElementById('map');
    var status = document.getElementById('map-status');
    var search = document.getElementById('map-search');
    var map = baseMap(div);
    var layer = L.featureGroup().addTo(map);
    var markers = {}; // device_id -> {marker, pos}
    var fitted = false;

    function matches(id) {
      var q = search.value.trim().toLowerCase();
      return q === '' || id.toLowerCase().indexOf(q) >= 0;
    }

    function tooltip(p) {
      return '<b class="mono">' + escapeHTML(p.device_id) + '</b><br>score ' +
        (p.score === null || p.score === undefined ? 'not yet' : Number(p.score).toFixed(2)) +
        '<br>last seen ' + ageText(p.age_seconds) + (p.protocol ? ' · ' + escapeHTML(p.protocol) : '') +
        (p.valid === false ? '<br><span style="color:#c0392b">fix invalid</span>' : '') +
        (p.speed_kmh !== null && p.speed_kmh !== undefined ? '<br>' + Number(p.speed_kmh).toFixed(0) + ' km/h' : '');
    }

    function style(p) {
      var b = band(p.score);
      return {
        radius: 8, weight: 2, color: '#ffffff', fillColor: COLORS[b], fillOpacity: p.valid === false ? 0.35 : 0.95,
        dashArray: p.valid === false ? '3 3' : null, className: 'fc-marker fc-' + b
      };
    }

    function place(p) {
      var m = markers[p.device_id];
      if (!m) {
        var mk = L.circleMarker([p.lat, p.lon], style(p));
        mk.bindTooltip('', { className: 'fc-tip', direction: 'top', offset: [0, -6] });
        mk.on('click', function () { window.location.href = devicePath(p.device_id); });
        m = markers[p.device_id] = { marker: mk };
      }
      m.pos = p;
      m.marker.setLatLng([p.lat, p.lon]);
      m.marker.setStyle(style(p));
      m.marker.setTooltipContent(tooltip(p));
      var show = matches(p.device_id);
      if (show && !layer.hasLayer(m.marker)) { layer.addLayer(m.marker); }
      if (!show && layer.hasLayer(m.marker)) { layer.removeLayer(m.marker); }
      var e = m.marker.getElement();
      if (e) {
        e.setAttribute('data-device', p.device_id);
        e.setAttribute('data-band', band(p.score));
        e.setAttribute('class', 'leaflet-interactive fc-marker fc-' + band(p.score));
      }
    }

    function fit() {
      var pts = [];
      Object.keys(markers).forEach(function (id) {
        var p = markers[id].pos;
        if (layer.hasLayer(markers[id].marker) && plausible(p)) { pts.push([p.lat, p.lon]); }
      });
      if (pts.length === 0) {
        Object.keys(markers).forEach(function (id) {
          if (layer.hasLayer(markers[id].marker)) { pts.push([markers[id].pos.lat, markers[id].pos.lon]); }
        });
      }
      if (pts.length > 0) { map.fitBounds(L.latLngBounds(pts), { padding: [30, 30], maxZoom: 15 }); }
    }

    // Every page of /api/positions (at most 50 pages of 1000).
    function fetchAll(cursor, acc, pages) {
      var url = '/api/positions?limit=1000' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
      return getJSON(url).then(function (body) {
        acc = acc.concat(body.positions || []);
        if (body.next_cursor && pages < 50) { return fetchAll(body.next_cursor, acc, pages + 1); }
        return acc;
      });
    }

    function refresh() {
      return fetchAll('', [], 1).then(function (list) {
        var seen = {};
        list.forEach(function (p) {
          if (typeof p.lat !== 'number' || typeof p.lon !== 'number') { return; }
          seen[p.device_id] = true;
          place(p);
        });
        Object.keys(markers).forEach(function (id) {
          if (!seen[id]) { layer.removeLayer(markers[id].marker); delete markers[id]; }
        });
        if (!fitted && list.length > 0) { fit(); fitted = true; }
        var shown = layer.getLayers().length;
        var odd = Object.keys(markers).filter(function (id) { return !plausible(markers[id].pos); }).length;
        status.textContent = shown + ' of ' + Object.keys(markers).length + ' devices on the map' +
          (odd > 0 ? ' (' + odd + ' at (0,0) or without a valid fix)' : '') + ' · updated ' +
          new Date().toISOString().slice(11, 19) + ' UTC';
        div.setAttribute('data-markers', String(shown));
      }).catch(function (err) {
        status.textContent = 'positions unavailable: ' + err.message;
      });
    }

    search.addEventListener('input', function () {
      Object.keys(markers).forEach(function (id) { place(markers[id].pos); });
      var shown = layer.getLayers().length;
      status.textContent = shown + ' of ' + Object.keys(markers).length + ' devices match';
    });
    search.addEventListener('keydown', function (ev) {
      if (ev.key !== 'Enter') { return; }
      ev.preventDefault();
      var hits = Object.keys(markers).filter(matches);
      if (hits.length === 1) { window.location.href = devicePath(hits[0]); } else if (hits.length > 1) { fit(); }
    });

    refresh();
    setInterval(refresh, POLL_POSITIONS_MS);

    // The rest of the page (tiles, fleet table, alerts, health, rules) is
    // re-read from the server without a reload; the filter form is left
    // alone while it has the focus.
    function refreshPage() {
      fetch(window.location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } }).then(function (r) {
        if (!r.ok) { throw new Error(r.status + ' ' + r.statusText); }
        return r.text();
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var form = document.getElementById('fleet-filter');
        var busy = form && form.contains(document.activeElement);
        ['tiles', 'fleet', 'alerts', 'health', 'rules', 'generated', 'error'].forEach(function (id) {
          var now = document.getElementById(id), next = doc.getElementById(id);
          if (!now || !next || (id === 'fleet' && busy)) { return; }
          now.replaceWith(document.importNode(next, true));
        });
        document.getElementById('live').textContent = 'updates live';
      }).catch(function (err) {
        document.getElementById('live').textContent = 'not updating: ' + err.message;
      });
    }
    setInterval(refreshPage, POLL_PAGE_MS);
  }

  // ---- device page: track and trips for a time range ----

  function rangeParam(v) {
    // datetime-local values are UTC on this page.
    if (!v) { return ''; }
    return v.length === 16 ? v + ':00Z' : v + 'Z';
  }

  function devicePage() {
    var div = document.getElementById('track-map');
    var api = div.dataset.api;
    var status = document.getElementById('track-status');
    var form = document.getElementById('range');
    var map = baseMap(div);
    var layer = L.featureGroup().addTo(map);
    var points = [];
    var fitted = false;
    var pending = null;
    var seq = 0;

    function range() {
      return 'from=' + encodeURIComponent(rangeParam(form.elements.from.value)) + '&to=' + encodeURIComponent(rangeParam(form.elements.to.value));
    }

    function tip(p) {
      var s = '<b>' + escapeHTML(utc(p.ts)) + ' UTC</b> · ' + escapeHTML(p.verdict);
      if (p.speed_kmh !== null && p.speed_kmh !== undefined) { s += '<br>' + Number(p.speed_kmh).toFixed(0) + ' km/h'; }
      if (p.valid === false) { s += '<br>fix marked invalid by the device'; }
      (p.reasons || []).forEach(function (r) {
        s += '<br>' + (r.status === 'warn' ? 'warned by ' : 'failed by ') + '<b>' + escapeHTML(r.rule) + '</b>: ' + escapeHTML(r.reason);
      });
      return s;
    }

    function draw(body) {
      layer.clearLayers();
      points = body.points || [];
      var line = points.map(function (p) { return [p.lat, p.lon]; });
      // The line joins the plausible fixes; a jump to (0,0) and back is
      // not drawn as travel, its fixes are drawn on their own.
      var trusted = points.filter(plausible).map(function (p) { return [p.lat, p.lon]; });
      if (trusted.length > 1) {
        L.polyline(trusted, { color: '#1d4f91', weight: 3, opacity: 0.7, className: 'fc-track', interactive: false }).addTo(layer);
      }
      var failed = 0;
      points.forEach(function (p) {
        if (p.verdict === 'fail') { failed++; }
        var m = L.circleMarker([p.lat, p.lon], {
          radius: p.verdict === 'fail' ? 6 : 4, weight: 1, color: '#ffffff', fillColor: COLORS[p.verdict] || COLORS.unchecked,
          fillOpacity: 0.95, className: 'fc-fix fc-' + p.verdict
        }).bindTooltip(tip(p), { className: 'fc-tip', direction: 'top' });
        layer.addLayer(m);
        var e = m.getElement();
        if (e) { e.setAttribute('data-verdict', p.verdict); e.setAttribute('data-ts', p.ts); }
      });
      if (p0(points) && !fitted) {
        var pts = trusted.length > 0 ? trusted : line;
        map.fitBounds(L.latLngBounds(pts), { padding: [30, 30], maxZoom: 16 });
        fitted = true;
      }
      status.textContent = points.length === 0 ? 'No fix in this range.' :
        (body.total + ' fixes in the range, ' + points.length + ' drawn' + (body.simplified ? ' (simplified for this zoom; failed fixes are always drawn)' : '') +
          ', ' + failed + ' failed a rule' + (body.truncated ? '; the range holds more fixes than one request returns: narrow it to see them all (the next start at ' + utc(body.next_from) + ' UTC)' : ''));
      div.setAttribute('data-fixes', String(points.length));
      div.setAttribute('data-failed', String(failed));
      failedTable();
    }

    function p0(list) { return list.length > 0; }

    function failedTable() {
      var box = document.getElementById('failed-fixes');
      box.textContent = '';
      var bad = points.filter(function (p) { return p.verdict === 'fail'; });
      if (bad.length === 0) { return; }
      var rows = bad.slice(0, 50).map(function (p) {
        var reasons = (p.reasons || []).filter(function (r) { return r.status !== 'warn'; })
          .map(function (r) { return r.rule + ': ' + r.reason; }).join('; ');
        var a = el('a', { href: '#track-map', text: utc(p.ts) });
        a.addEventListener('click', function () { map.setView([p.lat, p.lon], Math.max(map.getZoom(), 14)); });
        return el('tr', { className: 'failed-fix' }, [el('td', { className: 'nowrap' }, [a]),
          el('td', { className: 'mono', text: p.lat.toFixed(5) + ', ' + p.lon.toFixed(5) }), el('td', { text: reasons })]);
      });
      box.appendChild(el('h2', { text: 'Fixes a rule failed' + (bad.length > 50 ? ' (first 50 of ' + bad.length + ')' : '') }));
      box.appendChild(el('div', { className: 'scroll' }, [el('table', {}, [
        el('thead', {}, [el('tr', {}, [el('th', { text: 'Device time (UTC)' }), el('th', { text: 'Position' }), el('th', { text: 'Why' })])]),
        el('tbody', {}, rows)])]));
    }

    function exportLinks() {
      Array.prototype.forEach.call(document.querySelectorAll('#exports a[data-export]'), function (a) {
        a.setAttribute('href', api + '/' + a.dataset.export + '?' + range());
      });
    }

    function loadTrack() {
      exportLinks();
      var my = ++seq;
      var zoom = fitted ? map.getZoom() : 14;
      status.textContent = 'loading the track…';
      return getJSON(api + '/track?' + range() + '&zoom=' + zoom).then(function (body) {
        if (my !== seq) { return; }
        draw(body);
        if (!fitted) { return; }
        // Fetched for a guessed zoom before the first fit: again for the real one.
        if (map.getZoom() !== zoom) { loadTrack(); }
      }).catch(function (err) {
        if (my === seq) { status.textContent = 'track unavailable: ' + err.message; }
      });
    }

    function km(m) { return (m / 1000).toFixed(2) + ' km'; }
    function dur(s) {
      s = Math.round(s || 0);
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      return h > 0 ? h + 'h ' + m + 'm' : m + 'm ' + (s % 60) + 's';
    }

    function loadTrips() {
      var box = document.getElementById('trips');
      return getJSON(api + '/trips?' + range()).then(function (body) {
        box.textContent = '';
        var trips = body.trips || [], stops = body.stops || [];
        if (trips.length === 0 && stops.length === 0) {
          box.appendChild(el('p', { className: 'muted', text: 'No trip or stop in this range.' }));
          return;
        }
        if (trips.length > 0) {
          var rows = trips.map(function (t) {
            var tr = el('tr', { className: 'trip' }, [
              el('td', { className: 'nowrap', text: utc(t.start) }), el('td', { className: 'nowrap', text: utc(t.end) }),
              el('td', { text: dur(t.duration_seconds) }), el('td', { text: km(t.distance_m) }),
              el('td', { text: km(t.trusted_distance_m) }), el('td', { text: Number(t.max_speed_kmh || 0).toFixed(0) + ' km/h' }),
              el('td', { text: dur(t.idle_seconds) }), el('td', { text: String(t.fixes) }),
              el('td', {}, [el('span', { className: 'badge ' + band((t.passed_share || 0) * 100), text: ((t.passed_share || 0) * 100).toFixed(0) + ' %' })])
            ]);
            tr.style.cursor = 'pointer';
            tr.title = 'show this trip on the map';
            tr.addEventListener('click', function () {
              var a = Date.parse(t.start), b = Date.parse(t.end);
              var pts = points.filter(function (p) { var x = Date.parse(p.ts); return x >= a && x <= b && plausible(p); })
                .map(function (p) { return [p.lat, p.lon]; });
              if (pts.length === 0 && t.start_lat !== null && t.end_lat !== null) { pts = [[t.start_lat, t.start_lon], [t.end_lat, t.end_lon]]; }
              if (pts.length === 0) { return; }
              map.fitBounds(L.latLngBounds(pts), { padding: [30, 30], maxZoom: 16 });
              div.scrollIntoView({ behavior: 'smooth' });
            });
            return tr;
          });
          box.appendChild(el('table', {}, [
            el('thead', {}, [el('tr', {}, ['Start (UTC)', 'End', 'Duration', 'Distance', 'Trusted distance', 'Max speed', 'Idle', 'Fixes', 'Passed'].map(function (h) { return el('th', { text: h }); }))]),
            el('tbody', {}, rows)]));
        }
        if (stops.length > 0) {
          box.appendChild(el('h2', { text: 'Stops', style: 'margin-top:12px' }));
          box.appendChild(el('table', {}, [
            el('thead', {}, [el('tr', {}, ['Start (UTC)', 'End', 'Duration', 'Position'].map(function (h) { return el('th', { text: h }); }))]),
            el('tbody', {}, stops.map(function (s) {
              return el('tr', { className: 'stop' }, [el('td', { className: 'nowrap', text: utc(s.start) }), el('td', { className: 'nowrap', text: utc(s.end) }),
                el('td', { text: dur(s.duration_seconds) }), el('td', { className: 'mono', text: s.lat === null || s.lat === undefined ? '—' : Number(s.lat).toFixed(5) + ', ' + Number(s.lon).toFixed(5) })]);
            }))]));
        }
      }).catch(function (err) {
        box.textContent = '';
        box.appendChild(el('p', { className: 'muted', text: 'trips unavailable: ' + err.message }));
      });
    }

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var url = window.location.pathname + '?' + range();
      window.history.replaceState(null, '', url);
      fitted = false;
      loadTrack();
      loadTrips();
    });
    map.on('zoomend', function () {
      if (!fitted) { return; }
      clearTimeout(pending);
      pending = setTimeout(loadTrack, 300);
    });
    loadTrack();
    loadTrips();
  }

  if (document.body.dataset.page === 'dashboard') { dashboard(); }
  if (document.body.dataset.page === 'device') { devicePage(); }
}());
