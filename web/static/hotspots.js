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
  function layerParams(name) { return Object.assign({}, params, {layer: name}); }
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
  function styleFor(name) {
    if (name === "wards") {
      return function () { return {color: "#222", weight: 2, fill: false, opacity: 0.9, dashArray: null}; };
    }
    var isOverlay = !(CRIME.indexOf(name) >= 0);
    return function (f) {
      if (suppressedClass(f.properties)) {
        return {fillColor: HATCH, fillOpacity: 1, color: "#4d4d4d", weight: 0.8, opacity: 0.9};
      }
      var fill = f.properties.fill || "#bdbdbd";
      if (dottedLabel(f.properties.class_label)) fill = dotsFill(fill);
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
    var url = preloaded[name] || API + "/layers/" + encodeURIComponent(name) + ".geojson?" + key;
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
      var gj = L.geoJSON(fc, {
        style: styleFor(name),
        pointToLayer: function (f, latlng) {  // incident points (analysts): small circles, clustered below
          return L.circleMarker(latlng, {radius: 6});
        },
        onEachFeature: function (f, lyr) {
          if (name === "wards") {
            lyr.bindTooltip(esc(f.properties.name), {permanent: true, direction: "center", className: "ward-label"});
          } else {
            lyr.bindTooltip(function () { return toElement(tooltipHTML(fc, f.properties)); },
                            {sticky: true, className: "area-tooltip", pane: "hotspots-tooltips", opacity: 1});
            lyr.bindPopup(function () {
              return toElement(tooltipHTML(fc, f.properties) + '<p class="pop-code">' + esc(f.properties.code) + "</p>");
            });
            if (CRIME.indexOf(name) >= 0) lyr.on("click", function () { showSeries(f.properties.code); });
            lyr.on("mouseover", function () { lyr.setStyle({weight: 2.5, color: "#000"}); });
            lyr.on("mouseout", function () { gj.resetStyle(lyr); });
          }
        }
      });
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
      var n = typeof it.n === "number" ? plural(it.n, "area") : esc(it.n);
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
      .map(function (n) { return legendHTML(entries[n].legend); }).join("");
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
    var q = qs(params);
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
  function showSeries(code) {
    var box = document.getElementById("series");
    if (!box) {
      box = document.createElement("section");
      box.id = "series"; box.className = "series"; box.setAttribute("aria-live", "polite");
      var after = document.getElementById("comparison") || document.getElementById("summary");
      if (!after) return;
      after.parentNode.insertBefore(box, after.nextSibling);
    }
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

  // -- URL state, downloads ---------------------------------------------------------------------------
  function pageQuery() { return qs(Object.assign({}, params, {show: visible.join(",")})); }
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
      if (a) a.href = a.href.split("?")[0] + "?" + qs(Object.assign({}, params, mk ? {marking: mk.value} : {}));
    });
    if (mk && !mk.dataset.bound) { mk.dataset.bound = "1"; mk.addEventListener("change", function () { syncURL(false); }); }
    var dl = document.getElementById("download-links");
    if (dl) {
      var q = qs(params);
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
    }
    return parts.filter(Boolean).join(" · ");
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
  }
  function readForm() {
    var form = document.getElementById("controls");
    if (!form) return;
    var out = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      if (el.multiple) {
        out[el.name] = Array.prototype.filter.call(el.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; }).join(",");
      } else { out[el.name] = el.value; }
    });
    return out;
  }
  function applyChange() {
    var before = params.layer;
    var next = readForm();
    if (next.from && next.to && next.from > next.to) { showError("'From' is after 'To'."); return; }
    showError("");
    Object.assign(params, next);
    if (before !== params.layer) {
      if (entries[before] && map.hasLayer(entries[before].group)) map.removeLayer(entries[before].group);
      visible = visible.filter(function (n) { return n !== before; });
      if (visible.indexOf(params.layer) < 0) visible.unshift(params.layer);
    }
    visible.forEach(function (n) { if (entries[n] && !map.hasLayer(entries[n].group)) entries[n].group.addTo(map); });
    visible.forEach(function (n) { load(n); });
    syncURL(true); showOptions(); refreshPanel();
  }
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

  // -- start --------------------------------------------------------------------------------------------
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
  syncURL(); showOptions();
  first.then(function () { refreshPanel(); busy(-1); });
  if (state.print) {
    var t = document.getElementById("print-title");
    window.hotspots.ready = new Promise(function (resolve) {
      var iv = setInterval(function () { if (pending === 0) { clearInterval(iv); resolve(); } }, 100);
    });
  }
})();
