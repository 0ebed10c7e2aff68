"""Notification delivery: sends committed outbox rows to Subscription endpoints."""

from app.notify.worker import DeliveryWorker

__all__ = ["DeliveryWorker"]
