"""Answers /healthz ahead of the rest of the stack.

It runs before host validation and the HTTPS redirect because its callers are probes:
the container healthcheck talks plain HTTP to 127.0.0.1:8000, which is neither an allowed
host nor HTTPS. The answer carries no data beyond "ok" or "unavailable": 200 only when
the database answers a query.
"""

import logging

from django.db import DatabaseError, connections
from django.http import HttpResponse

HEALTH_PATH = "/healthz"

logger = logging.getLogger(__name__)


def database_ok(alias="default"):
    """True when the database answers `SELECT 1`; failures are logged, never raised."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("health check: database %r unavailable: %s", alias, error)
        return False
    return True


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info != HEALTH_PATH:
            return self.get_response(request)
        healthy = database_ok()
        response = HttpResponse(
            "ok\n" if healthy else "unavailable\n",
            status=200 if healthy else 503,
            content_type="text/plain; charset=utf-8",
        )
        response["Cache-Control"] = "no-store"
        return response
