"""Strict readers for settings taken from environment variables: the stacks' own
(stack_settings.env, in the web image), so the project and the settings layer parse alike."""

from stack_settings.env import REQUIRED, boolean, comma_list, integer, string

__all__ = ["REQUIRED", "boolean", "comma_list", "integer", "string"]
