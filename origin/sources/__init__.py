"""Remote sources: images served from a website or a bucket the operator names
(``SOURCES_FILE``), under ``/r/<source>/<stages>/-/<object path>[@<format>]``.

- origin.sources.config — the sources file, validated at start-up;
- origin.sources.paths — a ``/r/`` path: its source, stages, object and format (pure);
- origin.sources.upstream — one conditional read from an ``http`` source (through the
  guarded fetcher) or an ``s3`` source (read-only);
- origin.sources.cache — the source cache: bytes kept with their validators, revalidated
  after the source's TTL, one flight per object, missing objects remembered briefly,
  bounded in bytes;
- origin.sources.delivery — the ``/r/…`` endpoint.

docs/sources.md is the contract.
"""
