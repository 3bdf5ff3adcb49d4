"""A small GeoIP2 City database written at test time (mmdb-writer), so that no test needs
a download. Its networks are data only: nothing is ever sent to them.

Besides three cities it places private and loopback networks in Sydney, which no real
database does: the rule must leave them alone because they are private, not because the
database does not know them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet


@dataclass(frozen=True)
class City:
    name: str
    country: str
    latitude: float
    longitude: float
    radius_km: int = 20


PARIS = City("Paris", "FR", 48.8566, 2.3522)
LYON = City("Lyon", "FR", 45.7640, 4.8357)
SYDNEY = City("Sydney", "AU", -33.8688, 151.2093)

# One address in each network below, for the tests to come from.
PARIS_IP, LYON_IP, SYDNEY_IP, SYDNEY_IPV6 = "2.2.3.4", "2.3.4.5", "1.128.5.6", "2400:cb00::6"
UNKNOWN_IP = "5.5.5.5"  # public, in no network of the database
PRIVATE_IPS = ("10.1.2.3", "192.168.1.20", "127.0.0.1", "::1")

NETWORKS: dict[str, City] = {
    "2.2.0.0/16": PARIS,
    "2.3.0.0/16": LYON,
    "1.128.0.0/16": SYDNEY,
    "2400:cb00::/32": SYDNEY,
    # Never in a real database: proof that private addresses are skipped before lookup.
    "10.0.0.0/8": SYDNEY,
    "192.168.0.0/16": SYDNEY,
    "127.0.0.0/8": SYDNEY,
    "::1/128": SYDNEY,
}


def record(city: City) -> dict[str, object]:
    """A City record shaped as MaxMind's (the fields Django's GeoIP2.city reads)."""
    return {
        "city": {"names": {"en": city.name}},
        "country": {"iso_code": city.country, "names": {"en": city.country}},
        "location": {
            "latitude": city.latitude,
            "longitude": city.longitude,
            "accuracy_radius": city.radius_km,
        },
    }


def write_city_database(path: Path, networks: dict[str, City] | None = None) -> Path:
    """Write a GeoLite2-City database of `networks` (default NETWORKS) to `path`."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en"],
        description="Scoreboard test cities",
    )
    for network, city in (networks or NETWORKS).items():
        writer.insert_network(IPSet([network]), record(city))
    writer.to_db_file(str(path))
    return path
