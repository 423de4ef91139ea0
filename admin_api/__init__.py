"""The admin REST API under ``/api``: accounts, tokens, uploads, listing, keys."""
