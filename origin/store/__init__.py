"""The store: the database (tables, migrations, repositories: the only place with SQL) and
object storage (``objects``). The records it keeps are in origin.records."""
