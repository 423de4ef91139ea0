"""The store: the database and object storage (``objects``). The only place with SQL.

- ``database``: the engine, its transactions, and ``direct`` for the derivative index's two
  statements on the request path (``derivative_index``); ``tables`` and ``migrations``.
- One repository per aggregate: ``users`` (accounts and refresh tokens), ``images`` (with
  their analysis and working copies, and their owner's usage), ``derivatives`` (the
  derivative index and q_auto choices), ``keys`` (signing keys).

They hand back the frozen records of origin.records. Same queries on SQLite and PostgreSQL;
every method runs in its own transaction unless it says otherwise. Invariants that need two
statements (quota and row, token rotation, delete and usage) are kept inside one
transaction, with conditional updates rather than read-then-write so that concurrent
requests cannot both pass a check.
"""
