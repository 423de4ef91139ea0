"""The composition root: the CLI and the process that serves the origin and the admin API."""
