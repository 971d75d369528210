"""hotline — 接诉即办 (12345): tickets from intake through dispatch, handling, reply and rating.

Where things are: ``vocab`` (types, statuses, SLAs), ``models`` (tables), ``intake``
(new tickets), ``dispatch`` (classification, routing table, 派单), ``handling`` (受理,
退单, 答复, 延期, 评价, 回访, 重办), ``similar`` (duplicates, hotspots, reply
suggestions, FAQ), ``queries`` (views and lists), ``routes`` (API), ``pages`` (HTML),
``sla`` (the warning job), ``demo``. The category classifier is in ``classifier/``.
"""
