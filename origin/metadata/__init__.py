"""The metadata store: tables, migrations and repositories (the only place with SQL)."""
