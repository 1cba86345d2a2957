"""Static files storage that writes a gzip sibling next to every text asset.

collectstatic with ManifestStaticFilesStorage writes `name.css` and `name.<12 hex>.css`;
this subclass then writes `name.css.gz` and `name.<12 hex>.css.gz` so nginx's
`gzip_static on` serves them precompressed to clients that accept gzip. The archives are
deterministic (no name, mtime 0), and a sibling is only kept when it is smaller.
"""

import gzip
from pathlib import Path

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

COMPRESSIBLE_SUFFIXES = frozenset(
    {".css", ".js", ".mjs", ".map", ".json", ".svg", ".txt", ".xml", ".html", ".ttf", ".eot"}
)


def write_gzip_sibling(path):
    """Write `path`.gz when compressing `path` saves bytes; return whether it did."""
    path = Path(path)
    data = path.read_bytes()
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    target = path.with_name(path.name + ".gz")
    if len(packed) >= len(data):
        target.unlink(missing_ok=True)
        return False
    target.write_bytes(packed)
    return True


class CompressedManifestStaticFilesStorage(ManifestStaticFilesStorage):
    def post_process(self, paths, dry_run=False, **options):
        yield from super().post_process(paths, dry_run=dry_run, **options)
        if dry_run:
            return
        for name in paths:
            if Path(name).suffix.lower() not in COMPRESSIBLE_SUFFIXES:
                continue
            write_gzip_sibling(self.path(name))
            hashed = self.hashed_files.get(self.hash_key(self.clean_name(name)))
            if hashed and hashed != name:
                write_gzip_sibling(self.path(hashed))
