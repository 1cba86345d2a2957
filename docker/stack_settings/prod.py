"""Production settings layer: the project's own production settings
(DJANGO_PROJECT_SETTINGS), with the key, hosts, database and files required from the
environment, DEBUG off, and the security settings `check --deploy` asks for."""

from stack_settings import layer

_own = layer.own_settings()
globals().update(_own)
globals().update(layer.common(_own, production=True))
globals().update(layer.security(_own))
