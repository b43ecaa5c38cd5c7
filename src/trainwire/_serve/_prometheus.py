"""``GET /metrics``: what ``trainwire serve`` knows, in the Prometheus text format.

Read at scrape time (nothing is counted twice): the jobs by kind and state from the store
(every server on the database agrees), and this process's consumer: messages received by
outcome, whether it is connected, seconds since its last message and its ingest rate;
with ``--webhook``, the alerts each webhook took and refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .._spec._protocol import JobState, Kind
from ._receiver import Receiver
from ._store import OUTCOMES, Store

__all__ = ["CONTENT_TYPE", "ServeMetrics"]

#: The content type of the text format (version 0.0.4), as Prometheus asks for it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "trainwire_serve"


class ServeMetrics:
    """A prometheus-client collector of one server; :meth:`render` gives the page."""

    def __init__(
        self,
        store: Store,
        receiver: Receiver,
        alerts: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry

        self.store = store
        self.receiver = receiver
        self.alerts = alerts
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self) -> bytes:
        """The text format of every family."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def collect(self) -> Iterator[Any]:
        """The families (called by the registry at each scrape)."""
        yield self._jobs()
        yield from self._consumer()
        if self.alerts is not None:
            yield from self._alerts(self.alerts())

    def _jobs(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        jobs = GaugeMetricFamily(
            f"{PREFIX}_jobs", "Jobs in the store by kind and state.", labels=["kind", "state"]
        )
        counts = self.store.job_counts()
        for kind in Kind:
            for state in JobState:
                jobs.add_metric([kind.value, state.value], counts.get((kind, state), 0))
        return jobs

    def _consumer(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.receiver.stats
        received = CounterMetricFamily(
            f"{PREFIX}_messages_received",
            "Messages this process received, by outcome: applied or the rejection reason.",
            labels=["outcome"],
        )
        outcomes = dict(stats.outcomes)
        for outcome in OUTCOMES:
            received.add_metric([outcome], outcomes.get(outcome, 0))
        yield received
        yield GaugeMetricFamily(
            f"{PREFIX}_consumer_connected",
            "1 while this process is connected to the broker and consuming, else 0.",
            value=1 if self.receiver.consuming else 0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_seconds_since_last_message",
            "Seconds since this process stored its last message (since it started, before).",
            value=stats.seconds_since_last(),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_ingest_messages_per_second",
            "Messages stored per second over the last minute.",
            value=stats.ingest_rate(),
        )

    @staticmethod
    def _alerts(report: dict[str, Any]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        help_ = {"sent": "Alerts a webhook accepted.", "failed": "Alert posts that failed."}
        sent = CounterMetricFamily(f"{PREFIX}_alerts_sent", help_["sent"], labels=["webhook"])
        failed = CounterMetricFamily(f"{PREFIX}_alerts_failed", help_["failed"], labels=["webhook"])
        pending = GaugeMetricFamily(
            f"{PREFIX}_alerts_pending", "Alerts waiting for a webhook.", labels=["webhook"]
        )
        for hook in report.get("webhooks", []):
            sent.add_metric([hook["url"]], hook["delivered"])
            failed.add_metric([hook["url"]], hook["failed"])
            pending.add_metric([hook["url"]], hook["pending"])
        yield from (sent, failed, pending)
