"""Notifications: channels (webhook, email), the delivery outbox and its drainer."""
