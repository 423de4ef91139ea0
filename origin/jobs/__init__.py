"""Background work: a durable job queue in the metadata database (``queue``), the loop that
runs its jobs in every process (``runner``) and the eager-derivative job (``eager``).
Webhook deliveries are jobs too (origin.webhooks). docs/background.md tells the whole story.
"""
