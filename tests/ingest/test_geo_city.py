"""Region and city from a MaxMind City database (a small one written by the test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from sextant.ingest.enrich import GeoResolver


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
            "city": {"names": {"en": "London"}},
        },
    )
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    writer.to_db_file(str(path))
    return path


def test_city_database_gives_region_and_city(city_db: Path) -> None:
    geo = GeoResolver(city_db)
    try:
        london = geo.lookup("81.2.69.160")
        assert (london.country, london.region, london.city) == ("GB", "England", "London")
        # Outside the city database: the bundled country data still answers.
        elsewhere = geo.lookup("8.8.8.8")
        assert (elsewhere.country, elsewhere.region, elsewhere.city) == ("US", "", "")
    finally:
        geo.close()


def test_configured_city_database_enriches_stored_events(
    make_client: Any, city_db: Path, make_user: Any
) -> None:
    client = make_client(geoip_city_db=city_db)
    user = make_user(on=client)
    org = client.post("/api/v1/orgs", json={"name": "Geo"}, headers=user["headers"]).json()
    project = client.post(
        "/api/v1/projects", json={"org_id": org["id"], "name": "Geo"}, headers=user["headers"]
    ).json()
    key = client.post(
        f"/api/v1/projects/{project['id']}/keys",
        json={"name": "w", "kind": "write"},
        headers=user["headers"],
    ).json()["secret"]
    sent = client.post(
        "/api/v1/events",
        json={"event": "visit", "user_id": "geo-1", "context": {"ip": "81.2.69.160"}},
        headers={"X-API-Key": key},
    )
    assert sent.status_code == 202, sent.text
    row = client.app.state.events.query(  # type: ignore[attr-defined]
        "SELECT country, region, city, ip FROM events FINAL WHERE project_id = {p:UUID}",
        {"p": project["id"]},
    ).dicts()[0]
    assert row == {"country": "GB", "region": "England", "city": "London", "ip": ""}
