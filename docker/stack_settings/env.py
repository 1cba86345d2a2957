"""Strict readers for settings taken from environment variables.

A variable that is unset, empty or only whitespace counts as "not given": the
reader returns its default, or raises when there is none. A value that is given
but cannot be parsed always raises ImproperlyConfigured naming the variable and
the value, so a typo such as DEBUG=ture stops the process instead of silently
meaning something else.

Any variable NAME may instead be given as NAME_FILE, the path of a file holding the value
(the convention of the official database images): Docker Swarm mounts secrets as files
under /run/secrets, so a secret never has to be an environment variable of the service.
"""

import os

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


def _raw(name):
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        value = os.environ.get(name, "").strip()
        return value or None
    if os.environ.get(name, "").strip():
        raise ImproperlyConfigured(f"both {name} and {name}_FILE are set: keep only one of them")
    try:
        with open(path, encoding="utf-8") as file:
            value = file.read().strip()
    except OSError as error:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {error.strerror}") from None
    return value or None


def _missing(name, default):
    if default is REQUIRED:
        raise ImproperlyConfigured(f"{name} is required but is unset or empty")
    return default


def string(name, default=REQUIRED):
    """The variable's value with surrounding whitespace removed."""
    value = _raw(name)
    return _missing(name, default) if value is None else value


def boolean(name, default=REQUIRED):
    """One of 0/1/true/false/yes/no in any case; anything else is an error."""
    value = _raw(name)
    if value is None:
        return _missing(name, default)
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 0, 1, true, false, yes, no (any case), got {value!r}"
    )


def integer(name, default=REQUIRED, minimum=None, maximum=None):
    """A decimal integer, optionally bounded (inclusive)."""
    value = _raw(name)
    if value is None:
        return _missing(name, default)
    try:
        number = int(value, 10)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value!r}")
    return number


def comma_list(name, default=REQUIRED):
    """Comma-separated items, each stripped; blank items are dropped.

    A value made only of commas and blanks counts as not given.
    """
    value = _raw(name)
    items = [] if value is None else [item.strip() for item in value.split(",")]
    items = [item for item in items if item]
    if not items:
        return list(_missing(name, default))
    return items
