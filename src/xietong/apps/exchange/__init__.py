"""数据共享交换 / 资源目录: the government's data-resource catalogue and its exchange.

Part 1 (this package so far) is the catalogue: resources described with the 13 core
fields of 政务信息资源目录编制指南 (``models``, ``rules``), their lifecycle
(``service``: draft → published → withdrawn), search (``queries``), the data office's
xlsx workbook (``workbook``, ``importer``) and a DCAT-AP 3.0 export (``dcat``). Connectors,
requests and grants, the gateway, subscriptions and statistics build on these tables.
See docs/apps/exchange-catalogue.md.
"""
