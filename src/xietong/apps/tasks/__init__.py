"""任务协同 / 督查督办: duty tasks, their decomposition, dependencies, warnings and analysis.

``xietong.apps.tasks.analysis`` is the storage-free analysis engine (critical path and
slack, warnings, blocking, capacity, allocation problems, on-time rates, what-if); the
app's service layer loads task rows and calls it.
"""
