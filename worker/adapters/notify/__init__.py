"""Notification adapters: the Redis outbox and the senders (webhook, Teams, e-mail)."""
