// Org-unit maps (Leaflet). Configuration comes from a json_script element named by
// the container's data-config. Either `features` (a FeatureCollection) or `data_url`.
// After drawing, the container gets data-feature-count and data-state="ready".
(function () {
  "use strict";

  function popup(properties) {
    const box = document.createElement("div");
    const name = document.createElement("strong");
    name.textContent = properties.name;
    box.appendChild(name);
    if (properties.type) {
      box.appendChild(document.createElement("br"));
      box.appendChild(document.createTextNode(properties.type));
    }
    if (properties.url) {
      box.appendChild(document.createElement("br"));
      const link = document.createElement("a");
      link.href = properties.url;
      link.textContent = "\u2192 " + properties.name;
      box.appendChild(link);
    }
    return box;
  }

  function legend(map, types) {
    if (!types || !types.length) return;
    const control = L.control({ position: "bottomright" });
    control.onAdd = function () {
      const box = L.DomUtil.create("div", "cl-map-legend");
      box.setAttribute("data-testid", "map-legend");
      types.forEach(function (type) {
        const row = document.createElement("div");
        const swatch = document.createElement("span");
        swatch.className = "cl-swatch";
        swatch.style.backgroundColor = type.color;
        row.appendChild(swatch);
        row.appendChild(document.createTextNode(type.name));
        box.appendChild(row);
      });
      return box;
    };
    control.addTo(map);
  }

  function notify(container, text) {
    const notice = container.parentElement.querySelector("[data-map-notice]");
    if (!notice || !text) return;
    notice.textContent = text;
    notice.classList.remove("d-none");
  }

  function draw(container, map, config, data) {
    const colour = function (feature) { return feature.properties.color || "#d95f02"; };
    const layer = L.geoJSON(data, {
      pointToLayer: function (feature, latlng) {
        return L.circleMarker(latlng, {
          radius: 6, color: "#ffffff", weight: 1, fillColor: colour(feature), fillOpacity: 0.9,
        });
      },
      style: function (feature) {
        return { color: colour(feature), weight: 1.5, fillOpacity: 0.15 };
      },
      onEachFeature: function (feature, item) { item.bindPopup(popup(feature.properties)); },
    }).addTo(map);
    const count = data.features.length;
    container.dataset.featureCount = String(count);
    if (count) {
      const bounds = layer.getBounds();
      if (bounds.getNorthEast().equals(bounds.getSouthWest())) map.setView(bounds.getCenter(), 12);
      else map.fitBounds(bounds, { padding: [20, 20], maxZoom: 14 });
    } else {
      notify(container, config.empty_text);
    }
    if (data.capped) notify(container, config.capped_text.replace("%(n)s", String(data.limit)));
    legend(map, data.types);
    container.dataset.state = "ready";
  }

  function init(container) {
    const config = JSON.parse(document.getElementById(container.dataset.config).textContent);
    const map = L.map(container, { preferCanvas: true, worldCopyJump: true });
    map.setView([0, 0], 2);
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { attribution: config.attribution || "", maxZoom: 19 }).addTo(map);
    }
    if (config.features) {
      draw(container, map, config, config.features);
      return;
    }
    fetch(config.data_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status + " " + response.statusText);
        return response.json();
      })
      .then(function (data) { draw(container, map, config, data); })
      .catch(function (error) {
        container.dataset.state = "error";
        notify(container, String(error));
      });
  }

  document.querySelectorAll("[data-orgunit-map]").forEach(init);
})();
