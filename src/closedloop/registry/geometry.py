"""Geometry stored portably: GeoJSON, its bounding box and a simplified copy for maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SIMPLIFY_TOLERANCE = 0.001  # degrees, ~100 m


class GeometryError(ValueError):
    pass


@dataclass(frozen=True)
class PreparedGeometry:
    geojson: dict[str, Any]
    simplified: dict[str, Any]
    bbox: tuple[float, float, float, float]


def prepare_geometry(geojson: dict[str, Any] | None) -> PreparedGeometry | None:
    if not geojson:
        return None
    from shapely.geometry import mapping, shape

    try:
        geom = shape(geojson)
    except Exception as exc:
        raise GeometryError(f"not a valid GeoJSON geometry: {exc}") from None
    if geom.is_empty:
        raise GeometryError("the geometry is empty")
    if geom.geom_type not in {"Polygon", "MultiPolygon", "Point"}:
        raise GeometryError(f"expected a Polygon or MultiPolygon, got {geom.geom_type}")
    min_x, min_y, max_x, max_y = geom.bounds
    if not (-180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90):
        raise GeometryError("coordinates must be longitude/latitude in degrees (WGS 84)")
    simplified = geom.simplify(SIMPLIFY_TOLERANCE, preserve_topology=True)
    return PreparedGeometry(
        geojson=dict(mapping(geom)),
        simplified=dict(mapping(simplified)),
        bbox=(min_x, min_y, max_x, max_y),
    )


def validate_point(lat: Any, lon: Any) -> tuple[float | None, float | None]:
    """Both or neither; numbers in range. Raises GeometryError with the reason."""
    blank_lat = lat is None or str(lat).strip() == ""
    blank_lon = lon is None or str(lon).strip() == ""
    if blank_lat and blank_lon:
        return None, None
    if blank_lat or blank_lon:
        raise GeometryError("give both latitude and longitude, or neither")
    try:
        lat_f = float(str(lat).strip().replace(",", "."))
        lon_f = float(str(lon).strip().replace(",", "."))
    except ValueError:
        raise GeometryError(f"latitude/longitude must be numbers, got {lat!r}, {lon!r}") from None
    if not -90 <= lat_f <= 90:
        raise GeometryError(f"latitude {lat_f} is outside -90..90")
    if not -180 <= lon_f <= 180:
        raise GeometryError(f"longitude {lon_f} is outside -180..180")
    return lat_f, lon_f
