"""Settings package: `base` holds what every environment shares, `dev` and `prod` what differs.

Pick one with DJANGO_SETTINGS_MODULE (the compose files set it): config.settings.dev or
config.settings.prod. Every value that varies per deployment is read from the environment
through config.env.
"""
