"""Request counters per worker, minute and route, and the workers' heartbeats, for the dashboard."""

from django.db import models


class RouteMinuteStats(models.Model):
    """One worker's running totals for one route in one minute."""

    worker = models.CharField(max_length=100)
    minute = models.DateTimeField()
    route = models.CharField(max_length=100)
    requests = models.PositiveBigIntegerField(default=0)
    status_2xx = models.PositiveBigIntegerField(default=0)
    status_3xx = models.PositiveBigIntegerField(default=0)
    status_4xx = models.PositiveBigIntegerField(default=0)
    status_5xx = models.PositiveBigIntegerField(default=0)
    latency_counts = models.JSONField(default=list)
    shadow_denials = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["worker", "minute", "route"], name="unique_route_minute_per_worker")
        ]
        indexes = [models.Index(fields=["minute"])]


class WorkerHeartbeat(models.Model):
    """The last time a worker flushed its counters, and the configuration version it had loaded."""

    worker = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    config_version = models.BigIntegerField(null=True)
    loaded_at = models.DateTimeField(null=True)
    last_seen = models.DateTimeField()
