"""Development settings layer: the project's own development settings
(DJANGO_PROJECT_SETTINGS), with DEBUG on unless the environment says otherwise, and the
dev stack's database, hosts and files from the environment."""

from stack_settings import layer

_own = layer.own_settings()
globals().update(_own)
globals().update(layer.common(_own, production=False))
