"""Connectors: how the gateway reaches a provider's system (REST, SQL table/view, file).

``base`` holds the contract and failure types; ``rest``, ``sql`` and ``files`` one kind
each; ``settings`` checks what a data steward configures and builds (and caches) the
live connector for a stored row.
"""
