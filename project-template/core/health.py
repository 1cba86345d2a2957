"""Database liveness probe used by /healthz."""

import logging

from django.db import DatabaseError, connections

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
