"""The published catalogue as DCAT-AP 3.0 (Turtle or JSON-LD), valid against its SHACL shapes.

One ``dcat:Catalog``; one ``dcat:Dataset`` per published resource; one
``dcat:Distribution`` per share method; the gateway as one ``dcat:DataService``; the
classification 类/项/目/细目 as a SKOS concept scheme (the catalogue's theme taxonomy);
each resource's items as a CSVW table schema that its distributions ``dct:conformsTo``.
Share type, update cycle and file type map to the EU vocabularies DCAT-AP prescribes.
Values DCAT has no property for (open type and its conditions, the legal basis of
不予共享, items' classification levels) use the ``xt:`` namespace; DCAT-AP shapes are
open, so harvesters ignore them. docs/apps/exchange-catalogue.md has the full mapping.

External IRIs are typed in the graph (``<…/access-right/PUBLIC> a dct:RightsStatement``)
because the shapes check classes and a harvester must not need the vocabularies' own
data — the export validates with inference off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from xietong.apps.exchange.queries import published_resources
from xietong.apps.exchange.views import ResourceView
from xietong.apps.exchange.vocab import (
    Classification,
    DataType,
    ShareMethod,
    ShareType,
    UpdateCycle,
    label,
)
from xietong.kernel.access import Actor
from xietong.kernel.context import Context

EU = "http://publications.europa.eu/resource/authority/"
CSVW = Namespace("http://www.w3.org/ns/csvw#")
DCAT3 = Namespace(str(DCAT))  # terms rdflib's closed DCAT namespace lacks (dcat:version)
XT = Namespace("urn:xietong:exchange:")
ZH = "zh"
LANGUAGE = URIRef(f"{EU}language/ZHO")

ACCESS_RIGHTS = {
    ShareType.UNCONDITIONAL: URIRef(f"{EU}access-right/PUBLIC"),
    ShareType.CONDITIONAL: URIRef(f"{EU}access-right/RESTRICTED"),
    ShareType.NOT_SHARED: URIRef(f"{EU}access-right/NON_PUBLIC"),
}
FREQUENCY = {
    UpdateCycle.REALTIME: URIRef(f"{EU}frequency/CONT"),
    UpdateCycle.DAILY: URIRef(f"{EU}frequency/DAILY"),
    UpdateCycle.WEEKLY: URIRef(f"{EU}frequency/WEEKLY"),
    UpdateCycle.MONTHLY: URIRef(f"{EU}frequency/MONTHLY"),
    UpdateCycle.QUARTERLY: URIRef(f"{EU}frequency/QUARTERLY"),
    UpdateCycle.SEMIANNUAL: URIRef(f"{EU}frequency/ANNUAL_2"),
    UpdateCycle.YEARLY: URIRef(f"{EU}frequency/ANNUAL"),
    UpdateCycle.IRREGULAR: URIRef(f"{EU}frequency/IRREG"),
}
# format_detail values that name an EU file type; the API always answers JSON
FILE_TYPES = frozenset(
    [
        "CSV",
        "JSON",
        "XML",
        "XLSX",
        "XLS",
        "ODS",
        "PDF",
        "DOCX",
        "DOC",
        "ODT",
        "TXT",
        "HTML",
        "JPEG",
        "PNG",
        "GIF",
        "TIFF",
        "MP4",
        "ZIP",
    ]
)
DATATYPES = {
    DataType.STRING: XSD.string,
    DataType.INTEGER: XSD.integer,
    DataType.DECIMAL: XSD.decimal,
    DataType.DATE: XSD.date,
    DataType.DATETIME: XSD.dateTime,
    DataType.BOOLEAN: XSD.boolean,
    DataType.BINARY: XSD.base64Binary,
}
CONTEXT = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "skos": str(SKOS),
    "csvw": str(CSVW),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
    "xt": str(XT),
}


@dataclass(frozen=True)
class CatalogInfo:
    """The catalogue's own description (DCAT-AP makes title, description, publisher
    mandatory)."""

    title_zh: str = "政务信息资源目录"
    title_en: str = "Government information resource catalogue"
    description_zh: str = "各部门按《政务信息资源目录编制指南》编制并发布的政务信息资源。"
    description_en: str = "Government data resources published by the departments."
    publisher_name: str = "协同政务平台 数据共享交换"


class _Iris:
    def __init__(self, base_url: str) -> None:
        self.api = f"{base_url.rstrip('/')}/api/v1/exchange"
        self.catalog = URIRef(f"{self.api}/catalog")
        self.publisher = URIRef(f"{self.api}/catalog#publisher")
        self.gateway = URIRef(f"{self.api}/catalog#gateway")
        self.scheme = URIRef(f"{self.api}/categories")
        self.openapi = URIRef(f"{base_url.rstrip('/')}/api/v1/openapi.json")

    def dataset(self, code: str) -> URIRef:
        return URIRef(f"{self.api}/resources/{code}")  # codes are digits and one "/"

    def provider(self, department_code: str) -> URIRef:
        return URIRef(f"{self.api}/providers/{quote(department_code, safe='')}")

    def concept(self, category_prefix: str) -> URIRef:
        return URIRef(f"{self.api}/categories/{category_prefix}")


def _typed(graph: Graph, iri: URIRef, cls: URIRef) -> URIRef:
    graph.add((iri, RDF.type, cls))
    return iri


def _catalog(graph: Graph, iris: _Iris, info: CatalogInfo, views: list[ResourceView]) -> None:
    catalog = iris.catalog
    graph.add((catalog, RDF.type, DCAT.Catalog))
    graph.add((catalog, DCTERMS.title, Literal(info.title_zh, lang=ZH)))
    graph.add((catalog, DCTERMS.title, Literal(info.title_en, lang="en")))
    graph.add((catalog, DCTERMS.description, Literal(info.description_zh, lang=ZH)))
    graph.add((catalog, DCTERMS.description, Literal(info.description_en, lang="en")))
    graph.add((catalog, DCTERMS.publisher, iris.publisher))
    graph.add((iris.publisher, RDF.type, FOAF.Agent))
    graph.add((iris.publisher, FOAF.name, Literal(info.publisher_name, lang=ZH)))
    graph.add((catalog, DCTERMS.language, _typed(graph, LANGUAGE, DCTERMS.LinguisticSystem)))
    graph.add((catalog, DCAT.themeTaxonomy, iris.scheme))
    graph.add((iris.scheme, RDF.type, SKOS.ConceptScheme))
    graph.add((iris.scheme, DCTERMS.title, Literal("政务信息资源分类（类/项/目/细目）", lang=ZH)))
    if views:
        latest = max(view.updated_at for view in views)
        graph.add((catalog, DCTERMS.modified, Literal(latest, datatype=XSD.dateTime)))
    gateway = iris.gateway
    graph.add((catalog, DCAT.service, gateway))
    graph.add((gateway, RDF.type, DCAT.DataService))
    graph.add((gateway, DCTERMS.title, Literal("共享交换网关", lang=ZH)))
    graph.add((gateway, DCTERMS.title, Literal("Exchange gateway", lang="en")))
    endpoint = _typed(graph, URIRef(iris.api), RDFS.Resource)
    graph.add((gateway, DCAT.endpointURL, endpoint))
    graph.add((gateway, DCAT.endpointDescription, _typed(graph, iris.openapi, RDFS.Resource)))
    graph.add((gateway, DCTERMS.publisher, iris.publisher))


def _theme(graph: Graph, iris: _Iris, view: ResourceView, named: dict[str, str]) -> URIRef:
    """The concept of the entry's deepest level, with its broader chain up to 类."""
    prefix, broader = "", None
    concept = iris.scheme
    for level in view.category:
        prefix += level.code
        concept = iris.concept(prefix)
        if prefix not in named:  # the first name met for a code is its label
            named[prefix] = level.name
            graph.add((concept, RDF.type, SKOS.Concept))
            graph.add((concept, SKOS.prefLabel, Literal(level.name, lang=ZH)))
            graph.add((concept, SKOS.notation, Literal(prefix)))
            graph.add((concept, SKOS.inScheme, iris.scheme))
            if broader is None:
                graph.add((concept, SKOS.topConceptOf, iris.scheme))
                graph.add((iris.scheme, SKOS.hasTopConcept, concept))
            else:
                graph.add((concept, SKOS.broader, broader))
        broader = concept
    return URIRef(concept)


def _schema(graph: Graph, dataset: URIRef, view: ResourceView) -> URIRef:
    """The items as a CSVW table schema, also summarised in words for people."""
    schema = URIRef(f"{dataset}#items")
    graph.add((schema, RDF.type, DCTERMS.Standard))
    graph.add((schema, RDF.type, CSVW.Schema))
    graph.add((schema, DCTERMS.title, Literal(f"{view.name} 信息项", lang=ZH)))
    summary = "；".join(
        f"{item.name}（{label(DataType(item.data_type))}，"
        f"{label(Classification(item.classification))}）"
        for item in view.items
    )
    graph.add((schema, DCTERMS.description, Literal(summary, lang=ZH)))
    columns = []
    for item in view.items:
        column = BNode()
        graph.add((column, RDF.type, CSVW.Column))
        graph.add((column, CSVW.name, Literal(item.name)))
        graph.add((column, CSVW.title, Literal(item.name, lang=ZH)))
        graph.add((column, CSVW.datatype, DATATYPES[DataType(item.data_type)]))
        graph.add((column, XT.classification, Literal(item.classification)))
        if item.description:
            graph.add((column, DCTERMS.description, Literal(item.description, lang=ZH)))
        columns.append(column)
    head = BNode()
    Collection(graph, head, columns)
    graph.add((schema, CSVW.column, head))
    return schema


def _file_type(graph: Graph, view: ResourceView, method: ShareMethod) -> URIRef | None:
    if method == ShareMethod.API:
        name = "JSON"
    elif method == ShareMethod.FILE and (view.format_detail or "").upper() in FILE_TYPES:
        name = (view.format_detail or "").upper()
    else:
        return None  # a table (库表) or an unnamed file type: DCAT-AP makes it optional
    return _typed(graph, URIRef(f"{EU}file-type/{name}"), DCTERMS.MediaTypeOrExtent)


_METHOD_TEXT = {
    ShareMethod.API: "通过共享交换网关以接口方式按授权查询",
    ShareMethod.FILE: "经共享申请授权后以文件方式获取",
    ShareMethod.TABLE: "经共享申请授权后以库表交换方式获取",
}


def _distribution(
    graph: Graph, iris: _Iris, dataset: URIRef, view: ResourceView, method: ShareMethod
) -> URIRef:
    dist = URIRef(f"{dataset}#{method.value}")
    graph.add((dist, RDF.type, DCAT.Distribution))
    graph.add((dist, DCTERMS.title, Literal(f"{view.name}（{label(method)}）", lang=ZH)))
    graph.add((dist, DCTERMS.description, Literal(_METHOD_TEXT[method], lang=ZH)))
    # the gateway serves API distributions; the others are requested at the entry itself
    access = URIRef(f"{dataset}/query") if method == ShareMethod.API else dataset
    graph.add((dist, DCAT.accessURL, _typed(graph, access, RDFS.Resource)))
    if method == ShareMethod.API:
        graph.add((dist, DCAT.accessService, iris.gateway))
        graph.add((iris.gateway, DCAT.servesDataset, dataset))
    file_type = _file_type(graph, view, method)
    if file_type is not None:
        graph.add((dist, DCTERMS.format, file_type))
    if view.share_conditions:
        rights = BNode()
        graph.add((rights, RDF.type, DCTERMS.RightsStatement))
        graph.add((rights, RDFS.label, Literal(f"共享条件：{view.share_conditions}", lang=ZH)))
        graph.add((dist, DCTERMS.rights, rights))
    if view.items:
        graph.add((dist, DCTERMS.conformsTo, _schema(graph, dataset, view)))
    return dist


def _dataset(graph: Graph, iris: _Iris, view: ResourceView, named: dict[str, str]) -> URIRef:
    ds = iris.dataset(view.code)
    add = graph.add
    add((ds, RDF.type, DCAT.Dataset))
    add((ds, DCTERMS.title, Literal(view.name, lang=ZH)))
    add((ds, DCTERMS.description, Literal(view.summary, lang=ZH)))
    add((ds, DCTERMS.identifier, Literal(view.code)))
    publisher = iris.provider(view.provider_code)
    add((publisher, RDF.type, FOAF.Agent))
    add((publisher, FOAF.name, Literal(view.provider_name, lang=ZH)))
    add((publisher, DCTERMS.identifier, Literal(view.provider_code)))
    add((ds, DCTERMS.publisher, publisher))
    rights = ACCESS_RIGHTS[ShareType(view.share_type)]
    add((ds, DCTERMS.accessRights, _typed(graph, rights, DCTERMS.RightsStatement)))
    frequency = FREQUENCY[UpdateCycle(view.update_cycle)]
    add((ds, DCTERMS.accrualPeriodicity, _typed(graph, frequency, DCTERMS.Frequency)))
    if view.publish_date is not None:
        add((ds, DCTERMS.issued, Literal(view.publish_date, datatype=XSD.date)))
    add((ds, DCTERMS.modified, Literal(view.updated_at, datatype=XSD.dateTime)))
    add((ds, DCAT3.version, Literal(str(view.version))))
    add((ds, DCTERMS.language, LANGUAGE))
    add((ds, DCAT.theme, _theme(graph, iris, view, named)))
    for level in view.category:
        add((ds, DCAT.keyword, Literal(level.name, lang=ZH)))
    for code in view.related_codes:
        add((ds, DCTERMS.relation, _typed(graph, iris.dataset(code), RDFS.Resource)))
    add((ds, XT.resourceFormat, Literal(view.format)))
    if view.format_detail:
        add((ds, XT.formatDetail, Literal(view.format_detail)))
    add((ds, XT.openType, Literal(view.open_type)))
    for prop, value in (
        (XT.shareConditions, view.share_conditions),
        (XT.notSharedBasis, view.not_shared_basis),
        (XT.openConditions, view.open_conditions),
    ):
        if value:
            add((ds, prop, Literal(value, lang=ZH)))
    for method in view.share_methods:
        add((ds, DCAT.distribution, _distribution(graph, iris, ds, view, ShareMethod(method))))
    return ds


def catalog_graph(
    views: Iterable[ResourceView], base_url: str, info: CatalogInfo | None = None
) -> Graph:
    """The DCAT-AP graph of ``views`` (published entries), IRIs under ``base_url``."""
    entries = list(views)
    graph = Graph()
    for prefix, namespace in CONTEXT.items():
        graph.bind(prefix, namespace)
    iris = _Iris(base_url)
    _catalog(graph, iris, info or CatalogInfo(), entries)
    named: dict[str, str] = {}
    for view in entries:
        graph.add((iris.catalog, DCAT.dataset, _dataset(graph, iris, view, named)))
    return graph


def build_catalog(ctx: Context, actor: Actor, base_url: str) -> Graph:
    """The published catalogue as a graph (``exchange.catalogue.read``)."""
    return catalog_graph(published_resources(ctx, actor), base_url)


def to_turtle(graph: Graph) -> bytes:
    return graph.serialize(format="turtle", encoding="utf-8")


def to_jsonld(graph: Graph) -> bytes:
    return graph.serialize(format="json-ld", context=CONTEXT, indent=1, encoding="utf-8")
