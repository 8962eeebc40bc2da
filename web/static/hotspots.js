/* hotspots map: layers from the JSON API, legends, tooltips, controls with the state in the URL.
 * No dependencies beyond Leaflet (served by this app). Colours and classes come from the server
 * (feature.properties.fill / class_label and the layer's legend), so the map, print view and downloads agree. */
(function () {
  "use strict";
  var state = JSON.parse(document.getElementById("hotspots-state").textContent);
  var thisScript = document.currentScript || {dataset: {}};  // its data-* name the lazily loaded files
  var map = window[state.map];
  var API = state.api.replace(/\/$/, "");
  var params = Object.assign({}, state.params);
  /* The time control's month (YYYY-MM) when it shows one month of the period, else null. It lives in the page
   * URL only ("month="): the API is asked for the ordinary layer of that single month (from = to = month). */
  var timeMonth = /^\d{4}-\d{2}$/.test(new URLSearchParams(location.search).get("month") || "") ?
    new URLSearchParams(location.search).get("month") : null;
  var visible = state.show.slice();
  var catalogue = {};
  state.layers.forEach(function (l) { catalogue[l.name] = l; });
  var entries = {};   // name -> {group, legend, loadedKey, loading}
  var pending = 0;
  var CRIME = ["count", "rate", "eb_rate", "gistar", "lisa", "change", "emerging", "trend"];
  var HATCH = "url(#hs-hatch-suppressed)";  // the SVG pattern defined once in the page (_patterns.html)
  var phone = window.matchMedia("(max-width: 480px)");
  // tablets (up to 1024 px wide) collapse the layer list behind Leaflet's layers button
  function dockQueryNow() { return window.matchMedia("(max-width: 1024px)").matches; }

  document.body.dataset.state = "loading";
  window.hotspots = {map: map, entries: entries, state: state, params: params, visible: function () { return visible.slice(); }};

  // -- helpers ---------------------------------------------------------------------------------------
  function qs(obj) {
    var parts = [];
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      if (v === undefined || v === null || v === "") return;
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    });
    return parts.join("&");
  }
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function fmt(v) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "–";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return v.toLocaleString("en-GB");
      var a = Math.abs(v);
      return a !== 0 && a < 0.001 ? v.toExponential(1) : v.toLocaleString("en-GB", {maximumFractionDigits: a < 1 ? 4 : 2});
    }
    return String(v);
  }
  function plural(n, one, many) {
    return fmt(n) + " " + (n === 1 ? one : (many || one + "s"));
  }
  var MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"];
  function monthWords(ym) {
    var m = /^(\d{4})-(\d{2})$/.exec(ym || "");
    return m ? MONTHS[parseInt(m[2], 10) - 1] + " " + m[1] : String(ym || "");
  }
  function periodWords(a, b) {
    if (!a && !b) return "";
    return !b || a === b ? monthWords(a) : monthWords(a) + " to " + monthWords(b);
  }
  // a suppressed area with no class of its own (count/rate maps): hatched, never the "not significant" grey
  function suppressedClass(p) { return !!p.suppressed && /^Suppressed/.test(p.class_label || ""); }
  function suppressedItem(it) { return it.pattern === "hatch" || /^Suppressed/.test(it.label || ""); }
  /* Pattern as well as colour: "low" classes (Gi* cold spots, LISA Low-Low and Low-High) are dotted, so they
   * stay apart from the hot classes without colour vision (dark red and dark blue have the same lightness). */
  function dottedLabel(label) { return /^Cold spot|^Low-/.test(label || ""); }
  var SVGNS = "http://www.w3.org/2000/svg";
  function dotsFill(colour) {
    if (!/^#[0-9a-fA-F]{6}$/.test(colour || "")) return colour;
    var id = "hs-dots-" + colour.slice(1).toLowerCase();
    if (!document.getElementById(id)) {
      var defs = document.querySelector("svg.svg-defs defs");
      if (!defs) return colour;
      var pat = document.createElementNS(SVGNS, "pattern");
      pat.setAttribute("id", id); pat.setAttribute("patternUnits", "userSpaceOnUse");
      pat.setAttribute("width", "6"); pat.setAttribute("height", "6");
      var rect = document.createElementNS(SVGNS, "rect");
      rect.setAttribute("width", "6"); rect.setAttribute("height", "6"); rect.setAttribute("fill", colour);
      var dot = document.createElementNS(SVGNS, "circle");
      dot.setAttribute("cx", "3"); dot.setAttribute("cy", "3"); dot.setAttribute("r", "1.1"); dot.setAttribute("fill", "#ffffff");
      pat.appendChild(rect); pat.appendChild(dot); defs.appendChild(pat);
    }
    return "url(#" + id + ")";
  }
  /* The same dots for a layer drawn on a canvas (grid layers), which cannot fill with an SVG pattern: a canvas
   * pattern of one 6 px tile, as the SVG one. */
  var canvasDotsCache = {};
  function canvasDots(colour) {
    if (!/^#[0-9a-fA-F]{6}$/.test(colour || "")) return colour;
    if (!canvasDotsCache[colour]) {
      var tile = document.createElement("canvas");
      tile.width = 6; tile.height = 6;
      var c = tile.getContext("2d");
      if (!c) return colour;
      c.fillStyle = colour; c.fillRect(0, 0, 6, 6);
      c.fillStyle = "#ffffff"; c.beginPath(); c.arc(3, 3, 1.1, 0, 2 * Math.PI); c.fill();
      canvasDotsCache[colour] = c.createPattern(tile, "repeat") || colour;
    }
    return canvasDotsCache[colour];
  }
  // colours go in through the CSSOM, never as inline style attributes (the Content-Security-Policy has no
  // 'unsafe-inline' for styles); markup names its colour in data-colour and paint() applies it
  function paint(root) {
    Array.prototype.forEach.call(root.querySelectorAll("[data-colour]"), function (el) {
      var c = el.getAttribute("data-colour");
      if (!/^#[0-9a-fA-F]{3,8}$/.test(c)) return;
      if (el.classList.contains("outline")) el.style.borderColor = c;
      else if (el.classList.contains("dots")) el.style.backgroundColor = c;  // keeps the dots' background-image
      else el.style.background = c;
    });
    return root;
  }
  function toElement(html) {
    var div = document.createElement("div");
    div.innerHTML = html;
    return paint(div);
  }
  // what the API is asked for: the form's parameters, narrowed to the time control's month when it shows one
  function apiParams() {
    return timeMonth ? Object.assign({}, params, {from: timeMonth, to: timeMonth}) : Object.assign({}, params);
  }
  function layerParams(name) { return Object.assign(apiParams(), {layer: name}); }
  function showError(msg) {
    var el = document.getElementById("error");
    if (!el) return;
    el.hidden = !msg;
    el.textContent = msg || "";
  }
  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok || body.ok === false) {
          var e = new Error(body.error || ("HTTP " + r.status));
          e.status = r.status; e.column = body.column;
          throw e;
        }
        return body;
      });
    });
  }
  function busy(delta) {
    pending += delta;
    document.body.dataset.state = pending > 0 ? "loading" : "ready";
  }

  // -- attribution, background ------------------------------------------------------------------------
  map.attributionControl.setPrefix('<a href="https://leafletjs.com" title="Leaflet">Leaflet</a>');
  map.attributionControl.addAttribution(esc(state.attribution.join(" ")));
  map.attributionControl.addAttribution("police.uk locations are approximate");
  if (!state.tiles || state.tiles === "none") map.getContainer().classList.add("no-tiles");
  map.getContainer().setAttribute("role", "region");
  map.getContainer().setAttribute("aria-label", "Map of " + (document.title.split(" · ")[1] || "the area") +
    ": use the layer list and the legend beside it; the side panel lists the top hot spots as text");

  /* Area tooltips live in a pane of their own directly in the map container, above the controls (the map
   * pane is a stacking context under them, so a tooltip in it is drawn beneath the legend). The pane follows
   * the map pane's offset, so Leaflet's layer-point positions still land on the pointer. */
  var tipPane = map.createPane("hotspots-tooltips", map.getContainer());
  tipPane.classList.add("tooltip-top-pane");
  function syncTipPane() {
    var c = map.getCenter();
    L.DomUtil.setPosition(tipPane, map.latLngToContainerPoint(c).subtract(map.latLngToLayerPoint(c)).round());
  }
  map.on("move zoomend viewreset resize", syncTipPane);
  syncTipPane();

  // -- layers ------------------------------------------------------------------------------------------
  function styleFor(name, onCanvas) {
    if (name === "wards") {
      return function () { return {color: "#222", weight: 2, fill: false, opacity: 0.9, dashArray: null}; };
    }
    var isOverlay = !(CRIME.indexOf(name) >= 0);
    return function (f) {
      if (suppressedClass(f.properties)) {
        return {fillColor: HATCH, fillOpacity: 1, color: "#4d4d4d", weight: 0.8, opacity: 0.9};
      }
      var fill = f.properties.fill || "#bdbdbd";
      if (dottedLabel(f.properties.class_label)) fill = onCanvas ? canvasDots(fill) : dotsFill(fill);
      return {fillColor: fill, fillOpacity: isOverlay ? 0.7 : 0.8, color: "#555", weight: 0.6, opacity: 0.8};
    };
  }
  function plainFor(fc, label) {
    var items = (fc.legend && fc.legend.items) || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].label === label) return items[i].plain || (suppressedItem(items[i]) ? SUPPRESSED_PLAIN : "");
    }
    return "";
  }
  function tooltipHTML(fc, p) {
    var rows = (fc.fields || []).filter(function (f) { return p[f[0]] !== undefined; }).map(function (f) {
      return "<tr><th>" + esc(f[1]) + "</th><td>" + esc(fmt(p[f[0]])) + "</td></tr>";
    });
    var plain = p.class_label ? plainFor(fc, p.class_label) : "";
    var sw = suppressedClass(p) ? '<span class="swatch hatch"></span>' :
      '<span class="swatch' + (dottedLabel(p.class_label) ? " dots" : "") + '" data-colour="' + esc(p.fill) + '"></span>';
    var cls = p.class_label ? '<div class="tt-class">' + sw + "<span><strong>" + esc(plain ? plain.split(":")[0] : p.class_label) +
      "</strong>" + (plain ? " (" + esc(p.class_label) + ")" : "") + "</span></div>" : "";
    var why = fc.legend && fc.legend.explain && p.class_label && !suppressedClass(p) ?
      '<p class="tt-why">' + esc(fc.legend.explain) + "</p>" : "";
    // where the area is, in names people know (place_label: added to every layer by the server)
    var place = p.place_label ? '<p class="tt-place">' + esc(p.place_label) + "</p>" : "";
    return '<div class="tt">' + place + "<strong>" + esc(fc.title || "") + "</strong>" + cls + why + "<table>" + rows.join("") + "</table></div>";
  }
  function makeEntry(name) {
    var group = L.featureGroup();
    group.hotspotsName = name;
    entries[name] = {group: group, legend: null, loadedKey: null};
    return entries[name];
  }
  /* The layers shown first are fetched by <link rel=preload> in the page head, while the scripts load:
   * their first load uses that very URL (the server wrote it), so the browser hands over the preloaded body. */
  var preloaded = {};
  Array.prototype.forEach.call(document.querySelectorAll('link[rel="preload"][data-layer]'), function (l) {
    preloaded[l.getAttribute("data-layer")] = l.href;
  });
  /* The marker clusterer (vendored leaflet.markercluster), fetched the first time incident points are shown:
   * most visits never show them, so the first draw does not wait for it. Resolves without it if the page
   * names none (the points are then drawn unclustered). */
  var clusterer = null;
  function loadClusterer() {
    if (L.markerClusterGroup || !thisScript.dataset.clustererJs) return Promise.resolve();
    if (clusterer) return clusterer;
    (thisScript.dataset.clustererCss || "").split(" ").filter(Boolean).forEach(function (href) {
      var link = document.createElement("link");
      link.rel = "stylesheet"; link.href = href;
      document.head.appendChild(link);
    });
    clusterer = new Promise(function (resolve) {
      var s = document.createElement("script");
      s.src = thisScript.dataset.clustererJs;
      s.onload = s.onerror = function () { resolve(); };
      document.head.appendChild(s);
    });
    return clusterer;
  }
  function isPoints(fc) {
    return !!(fc.features.length && fc.features[0].geometry && fc.features[0].geometry.type === "Point");
  }
  /* Resolves once the browser has painted what is drawn so far (an animation frame, then a task after it),
   * or after 200 ms in a hidden tab, which runs no animation frames. */
  function afterPaint() {
    return new Promise(function (resolve) {
      var done = false;
      function go() { if (!done) { done = true; resolve(); } }
      requestAnimationFrame(function () { setTimeout(go, 0); });
      setTimeout(go, 200);
    });
  }
  /* Load a layer and draw it; with ``after`` (a promise), draw it only once ``after`` has settled (the
   * first layer is drawn before the ward outlines, whichever arrives first). */
  function load(name, after) {
    var e = entries[name] || makeEntry(name);
    var key = qs(layerParams(name));
    if (e.loadedKey === key) return Promise.resolve(e);
    if (e.loadingKey === key) return e.loading;
    e.loadingKey = key;
    busy(1);
    // a shared link to one month (time control) asks for that month, not the period the head preloaded
    var url = (!timeMonth && preloaded[name]) || API + "/layers/" + encodeURIComponent(name) + ".geojson?" + key;
    delete preloaded[name];  // only the first load: later ones carry the filters of their time
    e.loading = fetch(url).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok || body.ok === false) { var err = new Error(body.error || ("HTTP " + r.status)); throw err; }
        return body;
      });
    }).then(function (fc) {
      var wait = [after, isPoints(fc) ? loadClusterer() : null].filter(Boolean);
      return wait.length ? Promise.all(wait).then(function () { return fc; }) : fc;
    }).then(function (fc) {
      if (e.loadingKey !== key) return e;  // superseded by a newer request
      e.group.clearLayers();
      var points = isPoints(fc);
      var renderer = gridRenderer(name, fc);
      var gj = L.geoJSON(fc, {
        style: styleFor(name, !!renderer),
        renderer: renderer,
        pointToLayer: function (f, latlng) {  // incident points (analysts): small circles, clustered below
          return L.circleMarker(latlng, {radius: 6});
        },
        onEachFeature: isGrid(name) ? null : function (f, lyr) {
          if (name === "wards") {
            lyr.bindTooltip(esc(f.properties.name), {permanent: true, direction: "center", className: "ward-label"});
          } else {
            lyr.bindTooltip(function () { return toElement(tooltipHTML(fc, f.properties)); },
                            {sticky: true, className: "area-tooltip", pane: "hotspots-tooltips", opacity: 1});
            lyr.bindPopup(function () {
              return toElement(tooltipHTML(fc, f.properties) + '<p class="pop-code">' + esc(f.properties.code) + "</p>");
            });
            if (CRIME.indexOf(name) >= 0) lyr.on("click", function () { showSeries(f.properties.code); showHours(f.properties.code); });
            lyr.on("mouseover", function () { lyr.setStyle({weight: 2.5, color: "#000"}); });
            lyr.on("mouseout", function () { gj.resetStyle(lyr); });
          }
        }
      });
      if (isGrid(name)) bindGridCells(gj, fc);
      e.legend = fc.legend; e.title = fc.title; e.count = fc.features.length;
      e.loadedKey = key; e.loadingKey = null;
      if (!areaBounds && fc.features.length) areaBounds = gj.getBounds();
      // the legend first, which also fits the map to the area now that the legend has its size: the paths
      // are then drawn once, at the final view (added before the fit, each would be projected twice)
      renderLegends();
      if (points && L.markerClusterGroup) {  // vendored leaflet.markercluster (web/static/vendor/markercluster)
        // without a tile layer the map has no maxZoom, which the clusterer needs (it throws otherwise)
        if (!isFinite(map.getMaxZoom())) map.setMaxZoom(19);
        var clusters = L.markerClusterGroup({chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 50});
        clusters.addLayer(gj);
        clusters.addTo(e.group);
      } else {
        gj.addTo(e.group);
      }
      markDrawn(e);
      if (name === "wards") e.group.bringToFront();
      else if (entries.wards && map.hasLayer(entries.wards.group)) entries.wards.group.bringToFront();
      if (name === "wards") updateWardLabels();
      return e;
    }).catch(function (err) {
      e.loadingKey = null;
      var msg = (err && err.message) || String(err);
      showError(catalogue[name] ? catalogue[name].title + ": " + msg : msg);
    }).finally(function () { busy(-1); });
    return e.loading;
  }

  /* Fit the analysed area into the part of the map that no control covers. Each control box takes its
   * width from the left or right side, or its height from the top or bottom, whichever costs the map less
   * (the legend and layer list take a strip on the right; the attribution line and scale bar a strip at the
   * bottom). Refitted when the legend or the window changes, until the user moves the map. */
  var areaBounds = null, userMoved = false, fitting = false;
  function controlPadding() {
    var box = map.getContainer().getBoundingClientRect();
    var pad = {l: 10, r: 10, t: 10, b: 10};
    Array.prototype.forEach.call(map.getContainer().querySelectorAll(".leaflet-control"), function (el) {
      var r = el.getBoundingClientRect();
      if (!r.width || !r.height) return;
      var right = r.left + r.width / 2 > box.left + box.width / 2;
      var bottom = r.top + r.height / 2 > box.top + box.height / 2;
      var w = right ? box.right - r.left : r.right - box.left;
      var h = bottom ? box.bottom - r.top : r.bottom - box.top;
      if (w / box.width <= h / box.height) {
        if (right) pad.r = Math.max(pad.r, w + 10); else pad.l = Math.max(pad.l, w + 10);
      } else if (bottom) { pad.b = Math.max(pad.b, h + 10); } else { pad.t = Math.max(pad.t, h + 10); }
    });
    return pad;
  }
  function fitArea() {
    if (!areaBounds || userMoved) return;
    var pad = controlPadding();
    fitting = true;
    map.fitBounds(areaBounds, {paddingTopLeft: [pad.l, pad.t], paddingBottomRight: [pad.r, pad.b], animate: false});
    fitting = false;
    document.body.dataset.fitted = "1";
  }
  map.on("dragstart", function () { userMoved = true; });
  map.on("zoomstart", function () { if (!fitting) userMoved = true; });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { placeLegend(); map.invalidateSize({animate: false}); fitArea(); }, 150);
  });

  /* Ward names are readable only when few are in view: beyond MAX_WARD_LABELS (a city-wide view of a big
   * area such as London's 704 wards) they are hidden until the user zooms in. */
  var MAX_WARD_LABELS = 40;
  function updateWardLabels() {
    var e = entries.wards;
    if (!e) return;
    var bounds = map.getBounds(), n = 0;
    e.group.eachLayer(function (gj) {
      if (gj.eachLayer) gj.eachLayer(function (l) { if (bounds.contains(l.getBounds().getCenter())) n++; });
    });
    map.getContainer().classList.toggle("ward-labels-hidden", n > MAX_WARD_LABELS);
  }
  map.on("zoomend moveend", updateWardLabels);

  var starting = true;  // until the layers shown first are on the map (see "start" below)
  // layer control: every layer is an overlay; loaded the first time it is switched on
  var control = L.control.layers(null, null, {collapsed: state.print || phone.matches || dockQueryNow(), position: "topright"});
  var tile = null;
  map.eachLayer(function (l) { if (l instanceof L.TileLayer) tile = l; });
  if (tile) {
    var none = L.layerGroup();
    control.addBaseLayer(tile, "Basemap");
    control.addBaseLayer(none, "No basemap");
  }
  state.layers.forEach(function (l) {
    var e = makeEntry(l.name);
    control.addOverlay(e.group, esc(l.title));
  });
  control.addTo(map);
  // keyboard order: the map's controls (zoom, layers, legend) come before its 161 focusable areas
  var controlsBox = map.getContainer().querySelector(".leaflet-control-container");
  if (controlsBox) map.getContainer().insertBefore(controlsBox, map.getContainer().firstChild);
  var layersBox = control.getContainer();
  layersBox.setAttribute("aria-label", "Map layers");
  var layersList = layersBox.querySelector(".leaflet-control-layers-list");
  if (layersList) { layersList.setAttribute("role", "group"); layersList.setAttribute("aria-label", "Layers shown on the map"); }
  map.on("overlayadd", function (ev) {
    var name = ev.layer.hotspotsName;
    if (!name) return;
    if (visible.indexOf(name) < 0) visible.push(name);
    if (!starting) load(name);  // at the start, the layers are loaded in order below
    syncURL(); renderLegends();
  });
  map.on("overlayremove", function (ev) {
    var name = ev.layer.hotspotsName;
    if (!name) return;
    visible = visible.filter(function (n) { return n !== name; });
    syncURL(); renderLegends();
  });

  // -- legends: one per visible layer -------------------------------------------------------------------
  var legendCtl = L.control({position: "bottomright"});
  /* The legend box: a "Legend" button (collapsed by default on a phone, where the map comes first) and
   * one legend per visible layer. Plain words first ("Hot spot, 99 %: ..."), the statistical class name
   * and the note (cut-offs, classification) second. */
  legendCtl.onAdd = function () {
    var div = L.DomUtil.create("section", "legend-box leaflet-bar");
    div.setAttribute("aria-label", "Legend");
    var open = !phone.matches || state.print;
    div.innerHTML = '<button type="button" class="legend-toggle" id="legend-toggle" aria-controls="legends" aria-expanded="' +
      open + '">Legend</button><div id="legends" class="legends"' + (open ? "" : " hidden") + "></div>";
    L.DomEvent.disableScrollPropagation(div);
    L.DomEvent.disableClickPropagation(div);
    div.querySelector("#legend-toggle").addEventListener("click", function () {
      var body = div.querySelector("#legends");
      body.hidden = !body.hidden;
      this.setAttribute("aria-expanded", String(!body.hidden));
      div.classList.toggle("collapsed", body.hidden);
    });
    div.classList.toggle("collapsed", !open);
    return div;
  };
  legendCtl.addTo(map);
  /* On a portrait tablet the map column is narrow and tall: the legend docks below the map instead of
   * taking a third of its width. Back in its map corner when the window turns or grows. */
  var dockQuery = window.matchMedia("(min-width: 481px) and (max-width: 1024px) and (orientation: portrait)");
  var legendCorner = legendCtl.getContainer().parentNode;
  function placeLegend() {
    var box = legendCtl.getContainer(), dock = document.getElementById("legend-dock");
    if (!dock) return;
    var docked = state.print || dockQuery.matches;  // print: the legend sits beside the map, never over it
    document.body.classList.toggle("legend-docked", docked && !state.print);
    if (docked && box.parentNode !== dock) dock.appendChild(box);
    if (!docked && box.parentNode !== legendCorner) legendCorner.insertBefore(box, legendCorner.firstChild);
    map.invalidateSize({animate: false});
  }
  placeLegend();
  var SUPPRESSED_PLAIN = "Hidden to protect privacy: too few incidents to publish (not the same as \u201cnot significant\u201d)";
  function legendHTML(leg) {
    var items = (leg.items || []).map(function (it) {
      var hatch = suppressedItem(it);
      var sw = hatch ? '<span class="swatch hatch" aria-hidden="true"></span>' :
        '<span class="swatch' + (it.outline ? " outline" : "") + (dottedLabel(it.label) ? " dots" : "") + '" data-colour="' +
        esc(it.colour) + '" aria-hidden="true"></span>';
      var plain = it.plain || (hatch ? SUPPRESSED_PLAIN : "");
      var n = typeof it.n === "number" ? plural(it.n, leg.unit || "area") : esc(it.n);
      if (typeof it.n === "number" && /\(\d+\)$/.test(it.label || "")) n = "";  // "Wards (20)" says it already
      var words;
      if (plain) {
        var cut = plain.indexOf(":");
        var head = cut > 0 ? plain.slice(0, cut) : plain, rest = cut > 0 ? plain.slice(cut + 1).trim() : "";
        words = "<span class='lab'><strong>" + esc(head) + "</strong>" + (rest ? ": " + esc(rest) : "") +
          " <span class='stat'>" + esc(it.label) + (n ? ", " + n : "") + "</span></span>";
      } else {
        words = "<span class='lab'>" + esc(it.label) + (n ? " <span class='n'>(" + n + ")</span>" : "") + "</span>";
      }
      return "<li" + (hatch ? " class='suppressed-item'" : "") + ">" + sw + words + "</li>";
    });
    return '<div class="legend"><h3>' + esc(leg.title) + "</h3>" +
      (leg.explain ? '<p class="legend-explain">' + esc(leg.explain) + "</p>" : "") + bivariateSquare(leg.bivariate) +
      "<ul" + (leg.bivariate ? ' class="bivariate-items"' : "") + ">" + items.join("") + "</ul>" +
      (leg.note ? '<p class="legend-note">' + esc(leg.note) + "</p>" : "") + "</div>";
  }
  /* The bivariate legend square: crime rises to the right, the second variable upwards; each cell is its
   * class's colour with the number of areas in it. */
  function bivariateSquare(b) {
    if (!b || !b.grid) return "";
    var rows = [2, 1, 0].map(function (y) {
      return "<tr><th scope='row'>" + esc(b.levels[y]) + "</th>" + [0, 1, 2].map(function (x) {
        return "<td><span class='swatch bv-cell' data-colour='" + esc(b.grid[y][x]) + "' title='" +
          esc("Crime " + b.levels[x] + ", " + b.levels[y] + " " + b.y) + "'><span class='bv-n'>" + esc(String(b.n[y][x])) +
          "</span></span></td>";
      }).join("") + "</tr>";
    });
    return "<table class='bivariate-square'><caption>" + esc(b.y) + " (up) against " + esc(b.x) + " (right)</caption>" +
      rows.join("") + "<tr><td></td>" + [0, 1, 2].map(function (x) { return "<th scope='col'>" + esc(b.levels[x]) + "</th>"; }).join("") +
      "</tr></table>";
  }
  function renderLegends() {
    var html = visible.filter(function (n) { return entries[n] && entries[n].legend && map.hasLayer(entries[n].group); })
      .map(function (n) {
        // a month of the time control: its legend says which month the map shows
        var leg = entries[n].legend;
        if (timeMonth && n === "gistar") leg = Object.assign({}, leg, {title: leg.title + " \u00b7 " + monthWords(timeMonth)});
        return legendHTML(leg);
      }).join("");
    var box = document.getElementById("legends");
    if (box) box.innerHTML = html;
    if (box) { paint(box); box.parentNode.classList.toggle("empty", !html); }
    var pbox = document.getElementById("legends-print");
    if (pbox) { pbox.innerHTML = html; paint(pbox); }
    fitArea();
  }

  // -- side panel ------------------------------------------------------------------------------------
  function renderSummary(s) {
    var el = document.getElementById("summary");
    if (!el) return;
    var top = s.top.length ? "<ol class='top'>" + s.top.map(function (r) {
      var count = typeof r.count === "number" ? plural(r.count, "incident") : esc(fmt(r.count)) + " incidents";
      return "<li><strong>" + esc(r.name) + "</strong> (" + esc(r.code) + ")" + (r.place ? ", " + esc(r.place) : r.ward ? ", " + esc(r.ward) + " ward" : "") +
        ": " + count + " here, z = " + esc(fmt(r.z)) + " <span class='cls'>" + esc(r["class"]) + "</span></li>";
    }).join("") + "</ol>" : "<p>No area is a significant Gi* hot spot with these settings.</p>";
    el.innerHTML = "<h2>Top hot spots</h2><p class='muted'>" + esc(s.title) + "</p>" +
      "<p class='why'>Why this order: Gi* scores the neighbourhood, so an area with few incidents ranks high when " +
      "its neighbours have many.</p>" + top +
      "<p>" + plural(s.n_hot, "hot spot") + " and " + plural(s.n_cold, "cold spot") + " at 90 % confidence or more.</p>" +
      "<h2>Is there clustering?</h2><p id='moran-text'>" + esc(s.moran_text) + "</p>" +
      "<h2>Parameters and why</h2><ul class='messages'>" + s.messages.map(function (m) {
        return "<li" + (m.indexOf("Warning") === 0 ? " class='warn'" : "") + ">" + esc(m) + "</li>";
      }).join("") + "</ul>" +
      "<details><summary>Data vintages</summary><ul>" + s.vintages.map(function (v) {
        return "<li>" + esc(v.dataset) + ": " + esc(v.vintage) + "</li>"; }).join("") + "</ul></details>";
    var cut = document.getElementById("cutoff");
    if (cut) {
      var c = s.cutoffs;
      cut.textContent = c.mode === "raw" ? "Cut-off: p ≤ " + c.alpha + " (LISA); Gi* |z| ≥ 1.645/1.96/2.576" :
        "Cut-off (95%): Gi* p ≤ " + fmt(c.gi["95%"]) + "; LISA p ≤ " + fmt(c.lisa) + " over " + c.tests + " tests";
    }
  }
  function renderComparison(c) {
    var el = document.getElementById("comparison");
    if (!el) return;
    el.hidden = false;
    var emptyBaseline = c.total_before === 0;
    var rows = c.rows.filter(function (r) { return r.change !== 0; }).slice(0, 15).map(function (r) {
      // against an empty baseline a change is not an increase: show the server's class label instead
      var change = emptyBaseline ? esc(r.change_class || r.class_label || "no data in the baseline") :
        (typeof r.change === "number" && r.change > 0 ? "+" : "") + esc(fmt(r.change));
      return "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.ward_name || "") + "</td><td>" + esc(fmt(r.count_before)) +
        "</td><td>" + esc(fmt(r.count_after)) + "</td><td>" + change + "</td><td>" + esc(r.change_class || "") +
        (typeof r.ci_low === "number" && typeof r.ci_high === "number" ? " (" + esc(fmt(r.ci_low)) + " to " +
          esc(fmt(r.ci_high)) + " %)" : "") + "</td></tr>";
    });
    el.innerHTML = "<h2>Period comparison</h2><p id='compare-sentence'>" + esc(c.sentence) + "</p>" +
      "<table class='cmp'><thead><tr><th>Area</th><th>Ward</th><th>Before</th><th>After</th><th>Change</th>" +
      "<th>Tested change (confidence interval of the %)</th></tr></thead><tbody>" +
      (rows.join("") || "<tr><td colspan='6'>No area changed.</td></tr>") + "</tbody></table>" +
      "<p class='muted'>Largest increases first; areas with no change left out.</p>";
  }
  function refreshPanel() {
    var q = qs(apiParams());
    if (CRIME.indexOf(params.layer) >= 0 || !params.layer) {
      busy(1);
      getJSON(API + "/hotspots?" + q).then(renderSummary).catch(function (e) {
        var el = document.getElementById("summary");
        if (el) el.innerHTML = "<p class='warn'>Hot-spot summary unavailable: " + esc(e.message) + "</p>";
      }).finally(function () { busy(-1); });
    } else {
      var el = document.getElementById("summary");
      if (el) el.innerHTML = "<p class='muted'>Choose a crime layer for the hot-spot summary.</p>";
    }
    var cmp = document.getElementById("comparison");
    if (params.layer === "change") {
      busy(1);
      getJSON(API + "/compare?" + q).then(renderComparison).catch(function (e) { showError(e.message); })
        .finally(function () { busy(-1); });
    } else if (cmp) { cmp.hidden = true; }
  }

  // -- an area's time series (counts per step, Gi* class per step, Sen's trend line) ----------------
  var SVGNS = "http://www.w3.org/2000/svg";
  var GI_BIN_COLOURS = {"3": "#b2182b", "2": "#d6604d", "1": "#f4a582", "0": "#bdbdbd", "-1": "#92c5de",
                        "-2": "#4393c3", "-3": "#2166ac"};
  function svg(tag, attrs, parent) {
    var el = document.createElementNS(SVGNS, tag);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(el);
    return el;
  }
  function seriesChart(s) {
    var W = 300, H = 150, L = 34, B = 28, T = 8, n = s.counts.length;
    var nums = s.counts.map(function (c) { return typeof c === "number" ? c : null; });
    var max = Math.max.apply(null, nums.concat([5]).filter(function (v) { return v !== null; }));
    var bw = (W - L - 4) / Math.max(n, 1);
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, width: "100%", role: "img", "class": "series-chart",
                           "aria-label": "Incidents per " + s.step + " in " + s.name});
    svg("line", {x1: L, x2: W - 4, y1: y(0), y2: y(0), stroke: "#555"}, root);
    [0, max].forEach(function (v) {
      var t = svg("text", {x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": "10"}, root);
      t.textContent = String(v);
    });
    s.counts.forEach(function (c, i) {
      var v = nums[i], x = L + i * bw + 1;
      var h = v === null ? 4 : v;  // a suppressed step: a stub, labelled
      var r = svg("rect", {x: x, width: Math.max(bw - 2, 1), y: y(h), height: Math.max(y(0) - y(h), 0.5)}, root);
      var bin = s.gi_bin ? String(s.gi_bin[i]) : null;
      r.style.fill = v === null ? "#d9d9d9" : (bin ? GI_BIN_COLOURS[bin] : "#737373");
      var tip = svg("title", {}, r);
      tip.textContent = s.steps[i] + ": " + c + (bin && bin !== "0" ? " (Gi* " + (bin > 0 ? "hot" : "cold") + " spot)" : "");
    });
    if (s.trend) {
      var line = svg("line", {x1: L + bw / 2, x2: L + (n - 0.5) * bw, y1: y(Math.max(s.trend.intercept, 0)),
                              y2: y(Math.max(s.trend.intercept + s.trend.sens_slope * (n - 1), 0)),
                              "stroke-width": "2", "stroke-dasharray": "4 3"}, root);
      line.style.stroke = "#000";
    }
    [0, n - 1].forEach(function (i) {
      var t = svg("text", {x: L + (i + 0.5) * bw, y: H - 10, "text-anchor": i ? "end" : "start", "font-size": "10"}, root);
      t.textContent = s.steps[i];
    });
    return root;
  }
  function panelBox(id, afterIds) {  // a side-panel section, made once, after the first of afterIds present
    var box = document.getElementById(id);
    if (box) return box;
    var after = afterIds.map(function (a) { return document.getElementById(a); }).filter(Boolean)[0];
    if (!after) return null;
    box = document.createElement("section");
    box.id = id; box.className = id; box.setAttribute("aria-live", "polite");
    after.parentNode.insertBefore(box, after.nextSibling);
    return box;
  }
  function showSeries(code) {
    var box = panelBox("series", ["comparison", "summary"]);
    if (!box) return;
    busy(1);
    getJSON(API + "/series?" + qs(Object.assign({}, params, {code: code}))).then(function (s) {
      var words = s.trend ? "Trend: " + (s.trend.trend > 0 ? "significant increase" : s.trend.trend < 0 ?
        "significant decrease" : "no significant trend") + " (Sen's slope " + fmt(s.trend.sens_slope) + " per " + s.step +
        ", p = " + fmt(s.trend.p) + "; dashed line)." : "";
      box.innerHTML = "<h2>" + esc(s.name) + " over time</h2><p class='muted'>Incidents per " + esc(s.step) +
        (s.computed_from === "protected table" ? " (protected figures; a light grey stub is a small number, " +
        "hidden)" : "") + ".</p>" +
        "<div class='series-plot'></div><p>" + esc(words) + "</p>" +
        (s.category ? "<p>Emerging hot spot analysis: <strong>" + esc(s.category) + "</strong>; bars coloured by " +
          "each step's Gi* class (reds hot, blues cold, grey not significant).</p>" :
          "<p class='muted'>" + esc(s.emerging_note || "") + "</p>");
      box.querySelector(".series-plot").appendChild(seriesChart(s));
    }).catch(function (e) {
      box.innerHTML = "<p class='warn'>Time series unavailable: " + esc(e.message) + "</p>";
    }).finally(function () { busy(-1); });
  }

  // -- an area's hour of day x day of week heat grid (issue 12): inline SVG built with DOM calls ---------
  var DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  function pad2(h) { return (h < 10 ? "0" : "") + h; }
  function heat(f) {  // white (0) to dark red (the largest cell)
    var a = [255, 245, 240], b = [103, 0, 13];
    return "rgb(" + a.map(function (x, i) { return Math.round(x + (b[i] - x) * f); }).join(",") + ")";
  }
  function hoursGrid(t) {
    var C = 11, L = 28, T = 12, W = L + 24 * C + 2, H = T + 7 * C + 2;
    var nums = [].concat.apply([], t.counts).filter(function (v) { return typeof v === "number"; });
    var max = Math.max.apply(null, nums.concat([1]));
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, width: "100%", role: "img", "class": "hours-grid",
                           "aria-label": "Incidents per hour of day and day of week, " + t.scope});
    t.counts.forEach(function (row, d) {
      svg("text", {x: L - 3, y: T + d * C + C - 3, "text-anchor": "end", "font-size": "8"}, root).textContent = DAYS[d];
      row.forEach(function (v, h) {
        var r = svg("rect", {x: L + h * C, y: T + d * C, width: C - 1, height: C - 1,
                             fill: typeof v === "number" ? heat(v / max) : "#bdbdbd"}, root);
        svg("title", {}, r).textContent = t.weekdays[d] + " " + pad2(h) + ":00-" + pad2(h) + ":59: " + v;
      });
    });
    [0, 6, 12, 18, 23].forEach(function (h) {
      svg("text", {x: L + h * C + C / 2, y: T - 3, "text-anchor": "middle", "font-size": "8"}, root).textContent = pad2(h);
    });
    return root;
  }
  function showHours(code) {
    if (params.geography !== "lsoa" && params.geography !== "ward") return;
    var box = panelBox("hours", ["series", "summary"]);
    if (!box) return;
    getJSON(API + "/hours?" + qs(Object.assign({}, params, {code: code}))).then(function (t) {
      if (!t.has_times) {
        box.innerHTML = "<h2>When in the week</h2><p class='muted'>No times in this data (" + esc(t.scope) + ").</p>";
        return;
      }
      box.innerHTML = "<h2>When in the week</h2><p class='muted'>Incidents per hour of day and day of week, " +
        esc(t.scope) + (t.computed_from === "protected table" ? "; protected figures, a grey cell is a small " +
        "number, hidden" : "") + ".</p><div class='hours-plot'></div>" +
        (t.without_time ? "<p class='muted'>" + esc(t.without_time) + " incident(s) without a time are not shown.</p>" : "");
      box.querySelector(".hours-plot").appendChild(hoursGrid(t));
    }).catch(function (e) {
      box.innerHTML = "<p class='warn'>Hours unavailable: " + esc(e.message) + "</p>";
    });
  }

  // -- URL state, downloads ---------------------------------------------------------------------------
  function pageQuery() { return qs(Object.assign({}, params, {show: visible.join(","), month: timeMonth})); }
  function syncURL(push) {
    var url = location.pathname + "?" + pageQuery();
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
    var share = document.getElementById("share-link");
    if (share) share.href = url;
    var pr = document.getElementById("print-link");
    if (pr) pr.href = pr.href.split("?")[0] + "?" + pageQuery();
    var mk = document.getElementById("briefing-marking");
    ["briefing-link", "briefing-png-link"].forEach(function (id) {
      var a = document.getElementById(id);
      if (a) a.href = a.href.split("?")[0] + "?" + qs(Object.assign(apiParams(), mk ? {marking: mk.value} : {}));
    });
    if (mk && !mk.dataset.bound) { mk.dataset.bound = "1"; mk.addEventListener("change", function () { syncURL(false); }); }
    var dl = document.getElementById("download-links");
    if (dl) {
      var q = qs(apiParams());
      dl.innerHTML = "Current layer: " + ["geojson", "csv", "zip", "gpkg"].map(function (f) {  // zip: CSV + metadata.json + README
        return '<a class="dl dl-' + f + '" href="' + API + "/downloads/" + encodeURIComponent(params.layer) + "." + f + "?" + esc(q) +
          '" download>' + f.toUpperCase() + "</a>";
      }).join(" · ");
    }
    var pp = document.getElementById("print-params");
    if (pp) pp.textContent = "Parameters: " + paramsWords();
    var sub = document.getElementById("print-subtitle");
    if (sub) sub.textContent = filtersWords();
  }
  // the filters in words for the print view's subtitle and parameter line (never a raw query string)
  var GEOGRAPHY_WORDS = {lsoa: "neighbourhoods (LSOA 2021)", ward: "wards"};
  var SIGNIFICANCE_WORDS = {none: "no correction for multiple tests", fdr: "false discovery rate (Benjamini-Hochberg)",
                            bonferroni: "Bonferroni correction"};
  var VARIABLE_WORDS = {count: "incident count", rate: "rate per 1,000 residents", eb_rate: "smoothed rate per 1,000"};
  var categoryLabels = {};  // slug -> label ("violent-crime" -> "Violence and sexual offences")
  function categoryWords(slugs) {
    return (slugs || "").split(",").filter(Boolean).map(function (c) {
      if (categoryLabels[c]) return categoryLabels[c];
      var w = c.replace(/-/g, " ");
      return w.charAt(0).toUpperCase() + w.slice(1);
    }).join(", ") || "All crime";
  }
  /* One attribution block for print: the dataset lines repeat the Open Government Licence and Crown
   * copyright sentences; say each once, with the copyright years and the sources named after it. */
  function oneAttribution(lines) {
    var years = [], sources = [];
    lines.forEach(function (line) {
      line.split(/\.\s+(?=[A-Z])/).forEach(function (sentence) {
        var t = sentence.replace(/\.\s*$/, "").trim();
        var crown = /Crown copyright and database right(?: (\d{4}))?/.exec(t);
        if (crown) { if (crown[1] && years.indexOf(crown[1]) < 0) years.push(crown[1]); return; }
        if (/^Sources: /.test(t)) return;  // the map's own source list: named again from the dataset lines
        if (/Open Government Licence/.test(t)) {
          var paren = /\(([^)]+)\)/.exec(t);
          t = paren ? paren[1] : t.replace(/^Contains public sector information/, "")
            .replace(/,?\s*licensed under the Open Government Licence v3\.0,?/, "").trim();
        }
        t = t.replace(/^Source: /, "").replace(/,$/, "").trim();
        if (t && sources.indexOf(t) < 0) sources.push(t);
      });
    });
    years.sort();
    return "Contains public sector information licensed under the Open Government Licence v3.0. Contains OS data " +
      "© Crown copyright and database right" + (years.length ? " " + years.join(", ") : "") + ". Sources: " +
      sources.join("; ") + ".";
  }
  function filtersWords() {
    var layer = catalogue[params.layer] ? catalogue[params.layer].title : params.layer;
    var parts = [layer];
    if (CRIME.indexOf(params.layer) >= 0) {
      parts.push(categoryWords(params.category), periodWords(params.from, params.to),
                 "by " + (GEOGRAPHY_WORDS[params.geography] || params.geography));
      if (params.where) parts.push(whereWords(params.where));
    }
    return parts.filter(Boolean).join(" · ");
  }
  function whereWords(where) {  // "victim_age_band=0-17,18-24;weapon_flag=true" -> "victim age band 0-17 or 18-24; ..."
    return where.split(";").filter(Boolean).map(function (c) {
      var at = c.indexOf("=");
      return c.slice(0, at).replace(/_/g, " ") + " " + c.slice(at + 1).split(",").join(" or ");
    }).join("; ");
  }
  function paramsWords() {
    var out = [];
    if (params.layer === "gistar" || params.layer === "lisa") {
      out.push("variable: " + (VARIABLE_WORDS[params.variable] || params.variable),
               "neighbours: " + String(params.weights || "").replace("knn:", "nearest ").replace("distance:", "within ") +
               (/^distance:/.test(params.weights || "") ? " m" : ""),
               "significance: " + (SIGNIFICANCE_WORDS[params.significance] || params.significance));
      if (params.layer === "lisa") out.push("α = " + params.alpha);
    } else if (["count", "rate", "eb_rate"].indexOf(params.layer) >= 0 || /^overlay-/.test(params.layer)) {
      out.push("classes: " + params.classes + ", " + params.k);
    } else if (params.layer === "change") {
      out.push("baseline: " + (params.compare_from ? periodWords(params.compare_from, params.compare_to) :
                               "the same number of months just before"));
    }
    return out.join(" · ") || "defaults";
  }
  function showOptions() {
    var l = params.layer;
    var kind = catalogue[l] ? catalogue[l].kind : "crime";
    document.querySelectorAll(".opt").forEach(function (d) { d.hidden = true; });
    function on(cls) { var d = document.querySelector(".opt-" + cls); if (d) d.hidden = false; }
    if (l === "gistar" || l === "lisa") on("stat");
    if (["count", "rate", "eb_rate"].indexOf(l) >= 0 || kind === "overlay") on("choro");
    if (kind === "deprivation") on("dep");
    if (l === "change") on("change");
    if (l === "emerging" || l === "grid_emerging" || l === "trend") on("step");  // the cube's time step (issue 10)
    if (l === "emerging" || l === "grid_emerging") on("tn");  // how many steps back a bin's neighbourhood reaches
    showGridOptions(l);
  }
  function readForm() {
    var form = document.getElementById("controls");
    if (!form) return;
    var out = {};
    var where = [];  // the filter control: one multiple select per extra, each option "NAME=VALUE"
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled) return;  // disabled: a control that does not apply to this layer
      if (el.name === "where") {
        Array.prototype.forEach.call(el.options, function (o) { if (o.selected) where.push(o.value); });
      } else if (el.multiple) {
        out[el.name] = Array.prototype.filter.call(el.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; }).join(",");
      } else { out[el.name] = el.value; }
    });
    if (document.getElementById("where-filter")) out.where = where.join(";");
    return out;
  }
  function applyChange() {
    var before = params.layer;
    var next = readForm();
    if (next.from && next.to && next.from > next.to) { showError("'From' is after 'To'."); return; }
    showError("");
    Object.assign(params, next);
    if (params.layer !== "gistar" || periodMonths().indexOf(timeMonth) < 0) timeMonth = null;
    if (before !== params.layer) {
      if (entries[before] && map.hasLayer(entries[before].group)) map.removeLayer(entries[before].group);
      visible = visible.filter(function (n) { return n !== before; });
      if (visible.indexOf(params.layer) < 0) visible.unshift(params.layer);
    }
    visible.forEach(function (n) { if (entries[n] && !map.hasLayer(entries[n].group)) entries[n].group.addTo(map); });
    visible.forEach(function (n) { load(n); });
    syncURL(true); showOptions(); refreshPanel(); renderTime();
  }

  // -- the time control: the period's monthly Gi* maps, one at a time ------------------------------------
  /* Every month from the form's From to its To. A step shows the ordinary Gi* layer of that one month, asked
   * for through the same parameters as any other view (so it is cached, disclosure-controlled, downloadable
   * and shareable by URL: "month=" in the page's address). Position 0 of the slider is the whole period. */
  function periodMonths() {
    var a = /^(\d{4})-(\d{2})$/.exec(params.from || ""), b = /^(\d{4})-(\d{2})$/.exec(params.to || "");
    if (!a || !b) return [];
    var y = +a[1], m = +a[2], out = [];
    while ((y < +b[1] || (y === +b[1] && m <= +b[2])) && out.length < 1200) {
      out.push(y + "-" + (m < 10 ? "0" : "") + m);
      m += 1; if (m > 12) { m = 1; y += 1; }
    }
    return out;
  }
  var playTimer = null;
  function timeWords(k, months) {
    return k > 0 ? "Month " + k + " of " + months.length + ": " + monthWords(months[k - 1]) :
      "Whole period: " + periodWords(months[0], months[months.length - 1]) + " (" + months.length + " months)";
  }
  function renderTime() {
    var box = document.getElementById("time-control");
    if (!box) return;
    var months = periodMonths(), n = months.length, k = timeMonth ? months.indexOf(timeMonth) + 1 : 0;
    var slider = document.getElementById("time-slider"), status = document.getElementById("time-status");
    var few = n < 2;
    box.classList.toggle("disabled", few);
    slider.min = "0"; slider.max = String(Math.max(n, 1)); slider.value = String(k);
    slider.setAttribute("aria-valuetext", few ? "not available" : timeWords(k, months));
    status.textContent = few ? "One month of data: the time control needs two or more" : timeWords(k, months);
    document.getElementById("time-prev").disabled = few || k <= 1;
    document.getElementById("time-next").disabled = few || k >= n;
    document.getElementById("time-all").disabled = few || k === 0;
    document.getElementById("time-play").disabled = few;
    slider.disabled = few;
    if (few || (playTimer && k >= n)) stopPlay();
  }
  function showMonth(k) {
    var months = periodMonths();
    if (months.length < 2) return;
    k = Math.max(0, Math.min(months.length, k));
    var layerSelect = document.getElementById("layer");
    if (k > 0 && layerSelect && layerSelect.value !== "gistar") layerSelect.value = "gistar";  // the monthly maps are Gi*
    timeMonth = k > 0 ? months[k - 1] : null;
    applyChange();
  }
  function currentStep() { var m = periodMonths(); return timeMonth ? m.indexOf(timeMonth) + 1 : 0; }
  function stopPlay() {
    if (playTimer) { clearInterval(playTimer); playTimer = null; }
    var b = document.getElementById("time-play");
    if (b) { b.textContent = "Play"; b.setAttribute("aria-pressed", "false"); }
  }
  function startPlay() {
    var months = periodMonths();
    if (months.length < 2) return;
    if (currentStep() === 0 || currentStep() >= months.length) showMonth(1);
    var b = document.getElementById("time-play");
    b.textContent = "Pause"; b.setAttribute("aria-pressed", "true");
    playTimer = setInterval(function () {
      var k = currentStep();
      if (k >= periodMonths().length) { stopPlay(); return; }
      showMonth(k + 1);
      if (k + 1 >= periodMonths().length) stopPlay();  // stops at the end
    }, 1500);
  }
  (function bindTime() {
    if (!document.getElementById("time-control")) return;
    document.getElementById("time-prev").addEventListener("click", function () { stopPlay(); showMonth(currentStep() - 1); });
    document.getElementById("time-next").addEventListener("click", function () { stopPlay(); showMonth(currentStep() + 1); });
    document.getElementById("time-all").addEventListener("click", function () { stopPlay(); showMonth(0); });
    document.getElementById("time-play").addEventListener("click", function () { if (playTimer) stopPlay(); else startPlay(); });
    document.getElementById("time-slider").addEventListener("input", function () { stopPlay(); showMonth(parseInt(this.value, 10)); });
  })();
  var form = document.getElementById("controls");
  Array.prototype.forEach.call(document.querySelectorAll("#category option"), function (o) {
    categoryLabels[o.value] = o.textContent.replace(/\s*\([^)]*\)\s*$/, "");
  });
  if (form) {
    form.addEventListener("change", applyChange);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); applyChange(); });
  }
  window.addEventListener("popstate", function () { location.reload(); });
  // -- phone drawer: the map first, the controls in a drawer opened by a button (Escape closes it) ----------
  var panel = document.getElementById("panel");
  var toggle = document.getElementById("drawer-toggle");
  function setDrawer(open, focus) {
    document.body.classList.toggle("drawer-open", open);
    if (toggle) toggle.setAttribute("aria-expanded", String(open));
    if (open && focus) { var c = document.getElementById("drawer-close"); if (c) c.focus(); }
    if (!open && focus && toggle) toggle.focus();
  }
  if (toggle && panel) {
    toggle.addEventListener("click", function () { setDrawer(!document.body.classList.contains("drawer-open"), true); });
    document.getElementById("drawer-close").addEventListener("click", function () { setDrawer(false, true); });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && document.body.classList.contains("drawer-open")) setDrawer(false, true);
    });
  }
  if (state.print) {
    // the protective marking (OFFICIAL, OFFICIAL-SENSITIVE) at the top and bottom of the sheet
    Array.prototype.forEach.call(document.querySelectorAll(".marking"), function (el) {
      el.textContent = state.marking || "";
      el.hidden = !state.marking;
    });
    var attribution = document.getElementById("print-attribution");
    if (attribution) {
      var lines = Array.prototype.map.call(attribution.querySelectorAll(".attr-line"), function (el) { return el.textContent; });
      if (lines.length) attribution.textContent = oneAttribution(lines);
    }
    busy(1);
    getJSON(API + "/categories").then(function (body) {
      (body.categories || []).forEach(function (c) { categoryLabels[c.slug] = c.label; });
      syncURL();
    }).catch(function () { /* the subtitle keeps the words made from the slugs */ }).finally(function () { busy(-1); });
    var north = L.control({position: "topleft"});
    north.onAdd = function () {
      var img = L.DomUtil.create("img", "north-arrow");
      img.src = state.static_url ? state.static_url + "north-arrow.svg" : northArrowURL();
      img.alt = "North arrow: north is up";
      img.width = 32; img.height = 44;
      return img;
    };
    north.addTo(map);
    var when = document.getElementById("print-date");
    if (when) {
      var now = new Date();
      when.dateTime = now.toISOString().slice(0, 10);
      when.textContent = now.toLocaleDateString("en-GB", {day: "numeric", month: "long", year: "numeric"});
    }
  }
  function northArrowURL() {
    var s = document.querySelector("script[src$='hotspots.js']");
    return s ? s.getAttribute("src").replace(/hotspots\.js$/, "north-arrow.svg") : "north-arrow.svg";
  }
  var printButton = document.getElementById("print-button");
  if (printButton) printButton.addEventListener("click", function () { window.print(); });

  // -- grid and kernel density controls (issue 11): cell size, shape, neighbours, optimized band, bandwidth,
  // kernel. Built from the server's menus (state.grid) into one fieldset shown for grid layers only; the area
  // statistics' controls are disabled meanwhile, so the request carries the grid's own choices. --------------
  var GRID = state.grid || {layers: []};
  var SHAPE_WORDS = {square: "Squares", hex: "Hexagons"};
  var KERNEL_WORDS = {quartic: "Quartic (as ArcGIS and CrimeStat)", gaussian: "Gaussian"};
  function isGrid(name) { return (GRID.layers || []).indexOf(name) >= 0; }
  /* Grid layers draw on one canvas (about 1,200 cells for a city at 250 m: far cheaper than as many SVG paths),
   * unless a cell shows the hatched "suppressed" pattern, which only SVG can fill. */
  var gridCanvas = null;
  function gridRenderer(name, fc) {
    if (!isGrid(name) || !L.canvas) return undefined;
    if (fc.features.some(function (f) { return suppressedClass(f.properties); })) return undefined;
    gridCanvas = gridCanvas || L.canvas({padding: 0.5, tolerance: 3});
    return gridCanvas;
  }
  /* One tooltip, popup and hover style for all the cells of a grid layer, bound once to the layer group rather
   * than to each of its ~1,200 cells (the same content as the area layers' per-feature bindings). */
  function bindGridCells(gj, fc) {
    gj.bindTooltip(function (lyr) { return toElement(tooltipHTML(fc, lyr.feature.properties)); },
                   {sticky: true, className: "area-tooltip", pane: "hotspots-tooltips", opacity: 1});
    gj.bindPopup(function (lyr) {
      return toElement(tooltipHTML(fc, lyr.feature.properties) + '<p class="pop-code">' +
                       esc(lyr.feature.properties.code) + "</p>");
    });
    gj.on("mouseover", function (ev) { ev.layer.setStyle({weight: 2.5, color: "#000"}); });
    gj.on("mouseout", function (ev) { gj.resetStyle(ev.layer); });
  }
  function markDrawn(e) {  // when the layer is on screen: after the renderer's next frame (benchmarks, tests)
    e.drawnAt = null;
    window.requestAnimationFrame(function () { e.drawnAt = performance.now(); });
  }
  function gridSelect(parent, id, label, values, words, current) {
    var lab = document.createElement("label");
    lab.htmlFor = id; lab.textContent = label;
    var sel = document.createElement("select");
    sel.id = id; sel.name = id.replace(/^grid-/, "");
    values.forEach(function (v) {
      var o = document.createElement("option");
      o.value = String(v); o.textContent = words(v);
      if (String(v) === String(current)) o.selected = true;
      sel.appendChild(o);
    });
    parent.appendChild(lab); parent.appendChild(sel);
    return sel;
  }
  function gridWeights(cell) {  // the request's neighbours if on the menu, else the grid default: two cells
    var menu = GRID.weights || [];
    if (menu.indexOf(params.weights) >= 0) return params.weights;
    var two = "distance:" + (2 * Number(cell));
    return menu.indexOf(two) >= 0 ? two : menu[0];
  }
  function buildGridControls() {
    var layerSel = document.getElementById("layer");
    if (!layerSel || !(GRID.layers || []).length || document.getElementById("grid-controls")) return;
    var fs = document.createElement("fieldset");
    fs.id = "grid-controls"; fs.className = "opt opt-grid"; fs.hidden = true;
    var lg = document.createElement("legend"); lg.textContent = "Grid";
    fs.appendChild(lg);
    var cell = params.cell || "250";
    gridSelect(fs, "grid-cell", "Cell size", GRID.cell, function (v) { return v + " m"; }, cell);
    gridSelect(fs, "grid-shape", "Cell shape", GRID.shape, function (v) { return SHAPE_WORDS[v] || v; },
               params.shape || "square");
    var opt = document.createElement("div"); opt.className = "grid-opt";
    gridSelect(opt, "grid-optimized", "Distance band", ["0", "1"], function (v) {
      return v === "1" ? "Optimized: chosen from the data (as ArcGIS)" : "Fixed: as chosen below";
    }, params.optimized === "1" ? "1" : "0");
    var gi = document.createElement("div"); gi.className = "grid-gi";
    gridSelect(gi, "grid-weights", "Neighbouring cells", GRID.weights, function (v) {
      var m = /^distance:(\d+)/.exec(v), k = /^knn:(\d+)/.exec(v);
      return m ? "Within " + m[1] + " m" : k ? k[1] + " nearest cells" : v;
    }, gridWeights(cell));
    var kd = document.createElement("div"); kd.className = "grid-kde";
    gridSelect(kd, "grid-bandwidth", "Bandwidth", GRID.bandwidth, function (v) { return v + " m"; },
               params.bandwidth || "400");
    gridSelect(kd, "grid-kernel", "Kernel", GRID.kernel, function (v) { return KERNEL_WORDS[v] || v; },
               params.kernel || "quartic");
    // a dual KDE (incidents per 1,000 residents) where the area has a population table (its rate layer is listed)
    gridSelect(kd, "grid-variable", "Density of", ["count"].concat(catalogue.rate ? ["rate"] : []), function (v) {
      return v === "rate" ? "Incidents per 1,000 residents (dual KDE)" : "Incidents per km\u00b2";
    }, params.variable === "rate" && catalogue.rate ? "rate" : "count");
    fs.appendChild(opt); fs.appendChild(gi); fs.appendChild(kd);
    var host = layerSel.closest("fieldset");
    host.parentNode.insertBefore(fs, host.nextSibling);
  }
  function enable(root, on) {
    if (!root) return;
    Array.prototype.forEach.call(root.querySelectorAll("select, input"), function (el) { el.disabled = !on; });
  }
  function showGridOptions(l) {
    var fs = document.getElementById("grid-controls");
    if (!fs) return;
    var grid = isGrid(l);
    fs.hidden = !grid;
    enable(fs, grid);
    var parts = {".grid-opt": l === "grid_gistar", ".grid-gi": l === "grid_gistar" || l === "grid_emerging",
                 ".grid-kde": l === "kde"};
    Object.keys(parts).forEach(function (sel) {
      var d = fs.querySelector(sel);
      d.hidden = !parts[sel];
      enable(d, grid && parts[sel]);
    });
    enable(document.querySelector(".opt-stat"), !grid);  // the area statistics' variable, weights, significance
  }
  buildGridControls();

  // -- start --------------------------------------------------------------------------------------------
  // a "month=" outside the period, or with a layer other than Gi*, is ignored (the whole period is shown)
  if (periodMonths().indexOf(timeMonth) < 0 || params.layer !== "gistar") timeMonth = null;
  // The first layer is drawn and painted first (the ward outlines after it, rather than in the same task);
  // the side panel's request waits until it is drawn, so that the server answers
  // the map's layers before it computes the panel (the page counts as loading until the panel is in).
  busy(1);
  var shown = visible.filter(function (n) { return entries[n]; });
  shown.forEach(function (n) { entries[n].group.addTo(map); });
  starting = false;
  var first = shown.length ? load(shown[0]) : Promise.resolve();
  var painted = first.then(afterPaint);  // the other layers (ward outlines) once the first is on screen
  shown.slice(1).forEach(function (n) { load(n, painted); });
  syncURL(); showOptions(); renderTime();
  first.then(function () { refreshPanel(); busy(-1); });
  if (state.print) {
    var t = document.getElementById("print-title");
    window.hotspots.ready = new Promise(function (resolve) {
      var iv = setInterval(function () { if (pending === 0) { clearInterval(iv); resolve(); } }, 100);
    });
  }
})();
