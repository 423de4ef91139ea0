"""The transform registry: the URL grammar and every transform, one declaration each.

- declarations.py: what a token and a transform are; arguments.py: argument grammar as data;
- resize.py, orient.py, effects.py, overlay.py, output.py: the families, one declaration
  per token and transform; registry.py: their one literal order;
- parse.py: a path → an immutable Plan (plan.py); geometry.py and budget.py: sizes and
  work without pixels; formats.py: output formats and f_auto; describe.py: GET /api/grammar;
  query.py: the /transform query API, from the same declarations.
"""
