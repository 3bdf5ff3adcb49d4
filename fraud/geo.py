"""Where a completion came from: the city and country of its address, from a GeoIP2 City
database (MaxMind's GeoLite2 City or GeoIP2 City) at `GEOIP_PATH`, through Django's
`GeoIP2` (which needs the `geoip2` package, not GDAL).

On the completion path, so: the database is opened once per process, on first use, and
memory-mapped (the workers of a host share its pages through the page cache; a worker
forked after `geoipupdate` replaced the file opens the new one), and each address's
answer is kept in an LRU of `GEOIP_CACHE_SIZE` entries. No network, no SQL, no Redis.

Addresses that are not public (loopback, RFC 1918, shared, link-local, documentation,
reserved, multicast) have no place and are never looked up, whatever a database says.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.gis.geoip2 import GeoIP2, GeoIP2Exception
from geoip2.errors import AddressNotFoundError
from maxminddb import InvalidDatabaseError

logger = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Place:
    """A point a GeoIP database puts an address at, and how far from it the address may
    really be (its accuracy radius)."""

    latitude: float
    longitude: float
    radius_km: float
    country: str  # ISO 3166-1 code; "" when the database has none
    city: str  # "" when the database knows only the country

    def label(self) -> str:
        return ", ".join(part for part in (self.city, self.country) if part) or "unknown"

    def as_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "city": self.city,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "accuracyRadiusKm": self.radius_km,
        }

    def encode(self) -> str:
        """A compact text for the signal store: no "|" (its field separator); the city
        last, so a ";" in its name survives."""
        city = self.city.replace("|", "/")
        return (
            f"{self.latitude:.4f};{self.longitude:.4f};{self.radius_km:.0f};{self.country};{city}"
        )

    @classmethod
    def decode(cls, text: str) -> Place | None:
        parts = text.split(";", 4)
        if len(parts) != 5:
            return None
        try:
            return cls(float(parts[0]), float(parts[1]), float(parts[2]), parts[3], parts[4])
        except ValueError:
            return None


def distance_km(a: Place, b: Place) -> float:
    """The great-circle distance between two places (haversine, on a sphere of the
    Earth's mean radius: within 0.5 % of the ellipsoid, far finer than GeoIP)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def public_address(ip: str) -> str | None:
    """The address as a GeoIP database can place it (an IPv4-mapped IPv6 address as its
    IPv4 one), or None if it is not on the internet."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address) if address.is_global and not address.is_multicast else None


class Locator:
    """One open City database and its LRU of answers."""

    def __init__(self, path: str) -> None:
        self.path = path
        # MODE_AUTO: the C extension on a memory map, else the pure-Python reader on one.
        self.geoip = GeoIP2(path, cache=GeoIP2.MODE_AUTO)
        if not self.geoip.is_city:
            raise GeoIP2Exception(f"{path} is not a City database")
        self.place = functools.lru_cache(maxsize=settings.GEOIP_CACHE_SIZE)(self._lookup)

    def _lookup(self, ip: str) -> Place | None:
        address = public_address(ip)
        if address is None:
            return None
        try:
            found = self.geoip.city(address)
        except (AddressNotFoundError, InvalidDatabaseError, ValueError):
            return None
        latitude, longitude = found["latitude"], found["longitude"]
        if latitude is None or longitude is None:
            return None
        return Place(
            latitude=float(latitude),
            longitude=float(longitude),
            # A record without one counts as a point (FRAUD_TRAVEL_MIN_KM still applies).
            radius_km=float(found["accuracy_radius"] or 0),
            country=found["country_code"] or "",
            city=found["city"] or "",
        )


# What opening a database can raise: no such file, not a MaxMind DB, another edition.
_OPEN_ERRORS = (GeoIP2Exception, InvalidDatabaseError, OSError, ValueError)
_lock = threading.Lock()
_locator: Locator | None = None
_unusable: str | None = None  # a GEOIP_PATH that failed to open (logged once)


def locator() -> Locator | None:
    """This process's database, opened on first use; None without a usable one."""
    global _locator, _unusable
    path = settings.GEOIP_PATH
    if not path:
        return None
    current = _locator
    if current is not None and current.path == path:
        return current
    if path == _unusable:
        return None
    with _lock:
        if _locator is None or _locator.path != path:
            try:
                _locator = Locator(path)
            except _OPEN_ERRORS as exc:
                _unusable = path
                logger.warning("GeoIP database unusable, impossible travel is off: %s", exc)
                return None
        return _locator


def place_of(ip: str | None) -> Place | None:
    """Where an address is, or None (no database, not public, not in the database)."""
    found = locator()
    if found is None or not ip:
        return None
    return found.place(ip)


def database_problem(path: str) -> str | None:
    """Why the database at `path` cannot be used, or None: for the system check, which
    opens a copy of its own (closed as it goes), never the one the workers use."""
    try:
        geoip = GeoIP2(path, cache=GeoIP2.MODE_AUTO)
    except _OPEN_ERRORS as exc:
        return str(exc)
    return None if geoip.is_city else f"{path}: a Country database, not a City one"
