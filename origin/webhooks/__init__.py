"""Webhooks: events (``events``), signed in the Standard Webhooks format (``signing``) and
delivered as jobs through the guarded fetcher (``delivery``). docs/webhooks.md."""
