/* hotspots map: layers from the JSON API, legends, tooltips, controls with the state in the URL.
 * No dependencies beyond Leaflet (served by this app). Colours and classes come from the server
 * (feature.properties.fill / class_label and the layer's legend), so the map, print view and downloads agree. */
(function () {
  "use strict";
  var state = JSON.parse(document.getElementById("hotspots-state").textContent);
  var map = window[state.map];
  var API = state.api.replace(/\/$/, "");
  var params = Object.assign({}, state.params);
  var visible = state.show.slice();
  var catalogue = {};
  state.layers.forEach(function (l) { catalogue[l.name] = l; });
  var entries = {};   // name -> {group, legend, loadedKey, loading}
  var pending = 0;
  var CRIME = ["count", "rate", "eb_rate", "gistar", "lisa", "change"];

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
  // colours go in through the CSSOM, never as inline style attributes (the Content-Security-Policy has no
  // 'unsafe-inline' for styles); markup names its colour in data-colour and paint() applies it
  function paint(root) {
    Array.prototype.forEach.call(root.querySelectorAll("[data-colour]"), function (el) {
      var c = el.getAttribute("data-colour");
      if (!/^#[0-9a-fA-F]{3,8}$/.test(c)) return;
      if (el.classList.contains("outline")) el.style.borderColor = c; else el.style.background = c;
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

  // -- layers ------------------------------------------------------------------------------------------
  function styleFor(name) {
    if (name === "wards") {
      return function () { return {color: "#222", weight: 2, fill: false, opacity: 0.9, dashArray: null}; };
    }
    var isOverlay = !(CRIME.indexOf(name) >= 0);
    return function (f) {
      return {fillColor: f.properties.fill || "#bdbdbd", fillOpacity: isOverlay ? 0.7 : 0.8,
              color: "#555", weight: 0.6, opacity: 0.8};
    };
  }
  function tooltipHTML(fc, p) {
    var rows = (fc.fields || []).filter(function (f) { return p[f[0]] !== undefined; }).map(function (f) {
      return "<tr><th>" + esc(f[1]) + "</th><td>" + esc(fmt(p[f[0]])) + "</td></tr>";
    });
    var cls = p.class_label ? '<div class="tt-class"><span class="swatch" data-colour="' + esc(p.fill) + '"></span>' +
      esc(p.class_label) + "</div>" : "";
    return '<div class="tt"><strong>' + esc(fc.title || "") + "</strong>" + cls + "<table>" + rows.join("") + "</table></div>";
  }
  function makeEntry(name) {
    var group = L.featureGroup();
    group.hotspotsName = name;
    entries[name] = {group: group, legend: null, loadedKey: null};
    return entries[name];
  }
  function load(name) {
    var e = entries[name] || makeEntry(name);
    var key = qs(layerParams(name));
    if (e.loadedKey === key || e.loadingKey === key) return Promise.resolve(e);
    e.loadingKey = key;
    busy(1);
    return fetch(API + "/layers/" + encodeURIComponent(name) + ".geojson?" + key).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok || body.ok === false) { var err = new Error(body.error || ("HTTP " + r.status)); throw err; }
        return body;
      });
    }).then(function (fc) {
      if (e.loadingKey !== key) return e;  // superseded by a newer request
      e.group.clearLayers();
      var gj = L.geoJSON(fc, {
        style: styleFor(name),
        onEachFeature: function (f, lyr) {
          if (name === "wards") {
            lyr.bindTooltip(esc(f.properties.name), {permanent: true, direction: "center", className: "ward-label"});
          } else {
            lyr.bindTooltip(function () { return toElement(tooltipHTML(fc, f.properties)); },
                            {sticky: true, className: "area-tooltip"});
            lyr.bindPopup(function () {
              return toElement(tooltipHTML(fc, f.properties) + '<p class="pop-code">' + esc(f.properties.code) + "</p>");
            });
            lyr.on("mouseover", function () { lyr.setStyle({weight: 2.5, color: "#000"}); });
            lyr.on("mouseout", function () { gj.resetStyle(lyr); });
          }
        }
      });
      gj.addTo(e.group);
      e.legend = fc.legend; e.title = fc.title; e.count = fc.features.length;
      e.loadedKey = key; e.loadingKey = null;
      if (name === "wards") e.group.bringToFront();
      else if (entries.wards && map.hasLayer(entries.wards.group)) entries.wards.group.bringToFront();
      if (!fitted && fc.features.length) { fitted = true; map.fitBounds(gj.getBounds(), {padding: [8, 8], animate: false}); }
      if (name === "wards") updateWardLabels();
      renderLegends();
      return e;
    }).catch(function (err) {
      e.loadingKey = null;
      showError(catalogue[name] ? catalogue[name].title + ": " + err.message : err.message);
    }).finally(function () { busy(-1); });
  }
  var fitted = false;

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

  // layer control: every layer is an overlay; loaded the first time it is switched on
  var control = L.control.layers(null, null, {collapsed: state.print, position: "topright"});
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
  map.on("overlayadd", function (ev) {
    var name = ev.layer.hotspotsName;
    if (!name) return;
    if (visible.indexOf(name) < 0) visible.push(name);
    load(name); syncURL(); renderLegends();
  });
  map.on("overlayremove", function (ev) {
    var name = ev.layer.hotspotsName;
    if (!name) return;
    visible = visible.filter(function (n) { return n !== name; });
    syncURL(); renderLegends();
  });

  // -- legends: one per visible layer -------------------------------------------------------------------
  var legendCtl = L.control({position: "bottomright"});
  legendCtl.onAdd = function () {
    var div = L.DomUtil.create("div", "legend-box leaflet-bar");
    div.id = "legends";
    L.DomEvent.disableScrollPropagation(div);
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  legendCtl.addTo(map);
  function legendHTML(leg) {
    var items = (leg.items || []).map(function (it) {
      var sw = '<span class="swatch' + (it.outline ? " outline" : "") + '" data-colour="' + esc(it.colour) + '"></span>';
      return "<li>" + sw + esc(it.label) + ' <span class="n">(' + esc(it.n) + ")</span></li>";
    });
    return '<div class="legend"><h3>' + esc(leg.title) + "</h3><ul>" + items.join("") + "</ul>" +
      (leg.note ? '<p class="legend-note">' + esc(leg.note) + "</p>" : "") + "</div>";
  }
  function renderLegends() {
    var html = visible.filter(function (n) { return entries[n] && entries[n].legend && map.hasLayer(entries[n].group); })
      .map(function (n) { return legendHTML(entries[n].legend); }).join("");
    var box = document.getElementById("legends");
    if (box) box.innerHTML = html;
    if (box) paint(box);
    var pbox = document.getElementById("legends-print");
    if (pbox) { pbox.innerHTML = html; paint(pbox); }
  }

  // -- side panel ------------------------------------------------------------------------------------
  function renderSummary(s) {
    var el = document.getElementById("summary");
    if (!el) return;
    var top = s.top.length ? "<ol class='top'>" + s.top.map(function (r) {
      return "<li><strong>" + esc(r.name) + "</strong> (" + esc(r.code) + ")" + (r.ward ? ", " + esc(r.ward) + " ward" : "") +
        ": " + esc(fmt(r.count)) + " incidents, z = " + esc(fmt(r.z)) + " <span class='cls'>" + esc(r["class"]) + "</span></li>";
    }).join("") + "</ol>" : "<p>No area is a significant Gi* hot spot with these settings.</p>";
    el.innerHTML = "<h2>Top hot spots</h2><p class='muted'>" + esc(s.title) + "</p>" + top +
      "<p>" + esc(s.n_hot) + " hot and " + esc(s.n_cold) + " cold spot(s) at 90% or more.</p>" +
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
    var rows = c.rows.filter(function (r) { return r.change !== 0; }).slice(0, 15).map(function (r) {
      return "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.ward_name || "") + "</td><td>" + esc(fmt(r.count_before)) +
        "</td><td>" + esc(fmt(r.count_after)) + "</td><td>" + (r.change > 0 ? "+" : "") + esc(fmt(r.change)) + "</td></tr>";
    });
    el.innerHTML = "<h2>Period comparison</h2><p id='compare-sentence'>" + esc(c.sentence) + "</p>" +
      "<table class='cmp'><thead><tr><th>Area</th><th>Ward</th><th>Before</th><th>After</th><th>Change</th></tr></thead><tbody>" +
      (rows.join("") || "<tr><td colspan='5'>No area changed.</td></tr>") + "</tbody></table>" +
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

  // -- URL state, downloads ---------------------------------------------------------------------------
  function pageQuery() { return qs(Object.assign({}, params, {show: visible.join(",")})); }
  function syncURL(push) {
    var url = location.pathname + "?" + pageQuery();
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
    var share = document.getElementById("share-link");
    if (share) share.href = url;
    var pr = document.getElementById("print-link");
    if (pr) pr.href = pr.href.split("?")[0] + "?" + pageQuery();
    var dl = document.getElementById("download-links");
    if (dl) {
      var q = qs(params);
      dl.innerHTML = "Current layer: " + ["geojson", "csv", "gpkg"].map(function (f) {
        return '<a class="dl dl-' + f + '" href="' + API + "/downloads/" + encodeURIComponent(params.layer) + "." + f + "?" + esc(q) +
          '" download>' + f.toUpperCase() + "</a>";
      }).join(" · ");
    }
    var pp = document.getElementById("print-params");
    if (pp) pp.textContent = "Parameters: " + qs(params).replace(/&/g, " · ");
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
  if (form) {
    form.addEventListener("change", applyChange);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); applyChange(); });
  }
  window.addEventListener("popstate", function () { location.reload(); });
  var printButton = document.getElementById("print-button");
  if (printButton) printButton.addEventListener("click", function () { window.print(); });

  // -- start --------------------------------------------------------------------------------------------
  visible.forEach(function (n) { if (entries[n]) { entries[n].group.addTo(map); load(n); } });
  syncURL(); showOptions(); refreshPanel();
  if (state.print) {
    var t = document.getElementById("print-title");
    window.hotspots.ready = new Promise(function (resolve) {
      var iv = setInterval(function () { if (pending === 0) { clearInterval(iv); resolve(); } }, 100);
    });
  }
})();
