"""The tasks app's hook implementations (none yet: the analysis engine needs no hooks).

``xietong.plugins`` imports ``xietong.apps.<name>.plugin`` for every app package, so this
module must exist as soon as the package does.
"""
