"""The demo catalogue loads through the importer, is idempotent, and exports valid DCAT-AP."""

from __future__ import annotations

import pytest
from pyshacl import validate
from rdflib import Graph

from tests.apps.exchange.conftest import ADMIN, tree_size
from tests.conftest import shared_data
from xietong.apps.exchange import dcat, queries
from xietong.apps.exchange.demo import ENTRIES, load_demo_catalogue
from xietong.apps.exchange.queries import ResourceQuery
from xietong.demo.city import DEPARTMENTS
from xietong.kernel.context import Context
from xietong.kernel.org import service
from xietong.plugins import plugin_manager


def test_demo_catalogue_twice(ctx: Context) -> None:
    plugin_manager()
    service.create_region(ctx, ADMIN, "430000", "湖南省", "province")
    service.create_region(ctx, ADMIN, "430100", "长沙市", "city", "430000")
    for dept in DEPARTMENTS:
        service.create_department(ctx, ADMIN, dept.code, dept.name, "430100")
    load_demo_catalogue(ctx)
    first = queries.all_visible(ctx, ADMIN, ResourceQuery())
    assert len(first) == len(ENTRIES)
    assert {view.status for view in first} == {"published"}
    assert {view.share_type for view in first} == {"unconditional", "conditional", "not_shared"}
    births = next(view for view in first if view.name == "出生医学证明信息")
    assert births.provider_name == "长沙市卫生健康委员会"
    assert {item.classification for item in births.items} == {"internal", "sensitive"}

    leaves = tree_size(ctx)
    load_demo_catalogue(ctx)
    assert tree_size(ctx) == leaves
    assert queries.all_visible(ctx, ADMIN, ResourceQuery()) == first

    shapes = Graph().parse(shared_data("dcat-ap-3.0.0", "dcat-ap-SHACL.ttl"), format="turtle")
    graph = dcat.build_catalog(ctx, ADMIN, "http://127.0.0.1:8000/")
    conforms, _graph, text = validate(graph, shacl_graph=shapes, inference="none")
    assert conforms, text


def test_demo_sharing_end_to_end(ctx: Context) -> None:
    import json

    from xietong.apps.exchange import grants, stats
    from xietong.apps.exchange.demo_sharing import HUKOU, load_demo_sharing
    from xietong.demo import load_demo

    load_demo(ctx)
    rows = {row.code: row for row in stats.department_stats(ctx, ADMIN)}
    assert rows["430100-ga"].queries_served == 24  # 户籍, by the 医保 system
    assert rows["430100-wjw"].queries_served == 8
    assert rows["430100-wjw"].requests_approved == 1 and rows["430100-wjw"].requests_refused == 1
    assert rows["430100-sw"].requests_refused == 1  # 不予共享
    assert rows["430100-yb"].requests_pending == 1  # waiting in the 医保局's inbox
    assert rows["430100-yb"].queries_made == 24
    given = grants.list_grants(ctx, ADMIN, role="provider")
    hukou = next(g for g in given if g.resource_code == HUKOU)
    assert hukou.masked == {"姓名": "name", "公民身份号码": "id_number", "户籍地址": "address"}
    keys = json.loads((ctx.settings.data_dir / "exchange-demo" / "systems.json").read_text())
    assert set(keys) == {"yb-ywxt", "rs-shbk", "ga-hjxt"}
    leaves = tree_size(ctx)
    load_demo_sharing(ctx)
    assert tree_size(ctx) == leaves


def test_demo_provider_service_serves_the_departments_data(tmp_path) -> None:
    """The provider service the served platform starts beside itself (its lifespan)."""
    import asyncio
    import json
    from types import SimpleNamespace

    import httpx

    from xietong.apps.exchange import demo_sharing
    from xietong.apps.exchange.fake import people

    folder = tmp_path / "exchange-demo"
    folder.mkdir()
    app = SimpleNamespace(
        state=SimpleNamespace(ctx=SimpleNamespace(settings=SimpleNamespace(data_dir=tmp_path)))
    )

    async def serve_without_demo_data() -> None:
        async with demo_sharing.serve_demo_provider(app):
            pass  # no provider.json: nothing to start, nothing fails

    asyncio.run(serve_without_demo_data())
    residents = people(30)
    demo_sharing._hukou(folder / "hukou.db", residents)
    demo_sharing._births(folder / "births.db", residents, 10)
    server = demo_sharing.demo_provider(tmp_path, port=0)
    assert server is not None
    with server:  # take a free port, as loading the demo does, and record it
        port = server.server.server_address[1]
    (folder / demo_sharing.PROVIDER_FILE).write_text(json.dumps({"port": port}))
    token = {"Authorization": demo_sharing.PROVIDER_TOKEN}
    query = {"fields": ["xm", "gmsfhm"], "filters": {}, "limit": 3, "offset": 0}

    async def serve() -> None:
        async with demo_sharing.serve_demo_provider(app):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as client:
                rows = (await client.post(f"{base}/ga/hukou", json=query, headers=token)).json()
                assert rows["rows"] == [
                    {"xm": r["姓名"], "gmsfhm": r["公民身份号码"]} for r in residents[:3]
                ]
                births = await client.post(
                    f"{base}/wjw/cszm", json={**query, "fields": ["zmbh"]}, headers=token
                )
                assert len(births.json()["rows"]) == 3
                denied = await client.post(f"{base}/ga/hukou", json=query)
                assert denied.status_code == 401
                missing = await client.post(f"{base}/ga/nothing", json=query, headers=token)
                assert missing.status_code == 404
                garbled = await client.post(f"{base}/ga/hukou", content=b"{", headers=token)
                assert garbled.status_code == 400

    asyncio.run(serve())
    with pytest.raises(httpx.ConnectError):  # stopped with the server
        httpx.post(f"http://127.0.0.1:{port}/ga/hukou", json=query, headers=token)
