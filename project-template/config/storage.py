"""The static storage of the production settings: the stacks' own (stack_settings.storage),
which writes hashed names for nginx's long caching and gzip siblings for gzip_static."""

from stack_settings.storage import CompressedManifestStaticFilesStorage, write_gzip_sibling

__all__ = ["CompressedManifestStaticFilesStorage", "write_gzip_sibling"]
