"""The DCAT-AP 3.0 export: zero SHACL violations, the field mapping, and a negative control.

The shapes are the official DCAT-AP 3.0.0 SHACL file from ../shared (the test skips
without it, and fails under CI=true). Validation runs with inference off: the export
must carry every class the shapes check, as a harvester would receive it.
"""

from __future__ import annotations

import json

import pytest
from pyshacl import validate
from rdflib import Graph, Literal, URIRef
from rdflib import namespace as ns
from rdflib.compare import isomorphic

from tests.apps.exchange.conftest import ADMIN, Org, entry
from tests.conftest import shared_data
from xietong.apps.exchange import dcat, service
from xietong.apps.exchange.rules import CategoryLevel, ItemInput
from xietong.apps.exchange.vocab import UpdateCycle

BASE = "https://xietong.example.gov.cn/"
API = "https://xietong.example.gov.cn/api/v1/exchange"
EU = "http://publications.europa.eu/resource/authority/"
CSVW_COLUMN = URIRef("http://www.w3.org/ns/csvw#column")


@pytest.fixture(scope="module")
def shapes() -> Graph:
    return Graph().parse(shared_data("dcat-ap-3.0.0", "dcat-ap-SHACL.ttl"), format="turtle")


def conforms(data: Graph, shapes: Graph) -> tuple[bool, str]:
    ok, _report, text = validate(data, shacl_graph=shapes, inference="none", advanced=False)
    return bool(ok), str(text)


def _catalogue(org: Org) -> list[str]:
    """One published entry per update cycle, covering every share type, method and level."""
    shares = ["unconditional", "conditional", "not_shared"]
    methods = [("api",), ("file",), ("table",), ("api", "file", "table")]
    codes = []
    for index, cycle in enumerate(UpdateCycle):
        share = shares[index % 3]
        changes: dict = {"update_cycle": cycle.value, "name": f"资源{index}"}
        if share != "not_shared":
            changes["share_methods"] = methods[index % 4]
        if index == 0:
            changes.update(open_type="open", format="spreadsheet", format_detail="xlsx")
        if index == 3:
            changes.update(
                category=(
                    CategoryLevel("2", "主题信息资源"),
                    CategoryLevel("03", "社会保障"),
                    CategoryLevel("001", "社会保障卡"),
                    CategoryLevel("01", "发卡"),
                ),
                items=(
                    ItemInput("卡号", "string", "sensitive"),
                    ItemInput("余额", "decimal", "internal"),
                    ItemInput("有效", "boolean", "public"),
                    ItemInput("发卡时间", "datetime", "internal"),
                    ItemInput("照片", "binary", "sensitive"),
                    ItemInput("年度", "integer", "public"),
                ),
            )
        if codes:
            changes["related_codes"] = (codes[0], "301099/000001")  # one outside the export
        created = service.create_resource(org.ctx, ADMIN, entry(share_type=share, **changes))
        service.publish_resource(org.ctx, ADMIN, created.code)
        codes.append(created.code)
    service.create_resource(org.ctx, ADMIN, entry(name="未发布草稿"))  # not exported
    return codes


def test_the_export_has_zero_shacl_violations(org: Org, shapes: Graph) -> None:
    codes = _catalogue(org)
    graph = dcat.build_catalog(org.ctx, org.clerk_a, BASE)
    ok, text = conforms(graph, shapes)
    assert ok, text
    datasets = set(graph.subjects(ns.RDF.type, ns.DCAT.Dataset))
    assert datasets == {URIRef(f"{API}/resources/{code}") for code in codes}
    rights = {str(o) for o in graph.objects(None, ns.DCTERMS.accessRights)}
    assert rights == {f"{EU}access-right/{n}" for n in ("PUBLIC", "RESTRICTED", "NON_PUBLIC")}
    frequencies = {
        str(o).rsplit("/", 1)[1] for o in graph.objects(None, ns.DCTERMS.accrualPeriodicity)
    }
    assert frequencies == {
        "CONT", "DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "ANNUAL_2", "ANNUAL", "IRREG",
    }  # fmt: skip


def test_the_field_mapping(org: Org) -> None:
    created = service.create_resource(
        org.ctx,
        org.steward_a,
        entry(
            share_type="conditional",
            share_methods=("api", "file"),
            format="spreadsheet",
            format_detail="xlsx",
            update_cycle="monthly",
            related_codes=("102001/000001",),
        ),
    )
    view = service.publish_resource(org.ctx, org.steward_a, created.code)
    graph = dcat.build_catalog(org.ctx, org.steward_a, BASE)
    ds = URIRef(f"{API}/resources/{view.code}")
    catalog = URIRef(f"{API}/catalog")
    assert (catalog, ns.DCAT.dataset, ds) in graph
    assert graph.value(ds, ns.DCTERMS.title) == Literal("户籍人口基本信息", lang="zh")
    assert graph.value(ds, ns.DCTERMS.identifier) == Literal(view.code)
    assert graph.value(ds, ns.DCTERMS.issued) == Literal(view.publish_date)
    assert str(graph.value(ds, ns.DCTERMS.accessRights)) == f"{EU}access-right/RESTRICTED"
    assert str(graph.value(ds, ns.DCTERMS.accrualPeriodicity)) == f"{EU}frequency/MONTHLY"
    publisher = graph.value(ds, ns.DCTERMS.publisher)
    assert graph.value(publisher, ns.FOAF.name) == Literal("甲局", lang="zh")
    assert graph.value(publisher, ns.DCTERMS.identifier) == Literal("dept-a")
    theme = graph.value(ds, ns.DCAT.theme)
    assert graph.value(theme, ns.SKOS.prefLabel) == Literal("户籍人口", lang="zh")
    assert graph.value(theme, ns.SKOS.notation) == Literal("101001")
    top = graph.value(graph.value(theme, ns.SKOS.broader), ns.SKOS.broader)
    assert graph.value(top, ns.SKOS.prefLabel) == Literal("基础信息资源", lang="zh")
    assert set(graph.objects(ds, ns.DCAT.keyword)) >= {Literal("人口基础信息", lang="zh")}
    assert (ds, ns.DCTERMS.relation, URIRef(f"{API}/resources/102001/000001")) in graph
    api, file = URIRef(f"{ds}#api"), URIRef(f"{ds}#file")
    assert set(graph.objects(ds, ns.DCAT.distribution)) == {api, file}
    assert graph.value(api, ns.DCAT.accessURL) == URIRef(f"{ds}/query")
    assert str(graph.value(api, ns.DCTERMS.format)) == f"{EU}file-type/JSON"
    assert str(graph.value(file, ns.DCTERMS.format)) == f"{EU}file-type/XLSX"
    rights = graph.value(api, ns.DCTERMS.rights)
    assert "限于出生一件事" in str(graph.value(rights, ns.RDFS.label))
    schema = graph.value(api, ns.DCTERMS.conformsTo)
    assert (schema, ns.RDF.type, ns.DCTERMS.Standard) in graph
    columns = list(graph.items(graph.value(schema, CSVW_COLUMN)))
    assert len(columns) == 3  # one CSVW column per item, in order


def test_a_broken_graph_has_violations(org: Org, shapes: Graph) -> None:
    """The negative control: the same validation fails when a mandatory value is missing."""
    created = service.create_resource(org.ctx, ADMIN, entry())
    service.publish_resource(org.ctx, ADMIN, created.code)
    graph = dcat.build_catalog(org.ctx, ADMIN, BASE)
    assert conforms(graph, shapes)[0]
    ds = next(graph.subjects(ns.RDF.type, ns.DCAT.Dataset))
    graph.remove((ds, ns.DCTERMS.title, None))
    ok, text = conforms(graph, shapes)
    assert (not ok and "dc1:title" in text) or "terms/title" in text
    restored = dcat.build_catalog(org.ctx, ADMIN, BASE)
    dist = next(restored.subjects(ns.RDF.type, ns.DCAT.Distribution))
    restored.remove((dist, ns.DCAT.accessURL, None))
    restored.add((ds, ns.DCTERMS.accrualPeriodicity, Literal("monthly")))  # not an IRI
    ok, text = conforms(restored, shapes)
    assert not ok
    assert "accessURL" in text and "accrualPeriodicity" in text


@pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")  # its JSON-LD parser
def test_json_ld_carries_the_same_graph(org: Org) -> None:
    created = service.create_resource(org.ctx, ADMIN, entry(share_methods=("api", "table")))
    service.publish_resource(org.ctx, ADMIN, created.code)
    graph = dcat.build_catalog(org.ctx, ADMIN, BASE)
    document = json.loads(dcat.to_jsonld(graph))
    assert document["@context"]["dcat"] == str(ns.DCAT)
    from_jsonld = Graph().parse(data=dcat.to_jsonld(graph), format="json-ld")
    from_turtle = Graph().parse(data=dcat.to_turtle(graph), format="turtle")
    assert isomorphic(from_jsonld, from_turtle)


def test_an_empty_catalogue_is_still_valid(org: Org, shapes: Graph) -> None:
    graph = dcat.build_catalog(org.ctx, ADMIN, BASE)
    ok, text = conforms(graph, shapes)
    assert ok, text
    assert not list(graph.subjects(ns.RDF.type, ns.DCAT.Dataset))
