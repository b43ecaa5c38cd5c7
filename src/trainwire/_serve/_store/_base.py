"""The store's interface: jobs and the message log, the same for every database."""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence

from ..._spec._protocol import JobState, Kind
from ._listing import JobPage, JobQuery
from ._outbox import Outbox
from ._prune import Pruned
from ._records import Delivery, JobRecord, MessageRecord, Outcome, StoreError, Transition

__all__ = ["Store"]


class Store(abc.ABC):
    """Jobs and the message log, behind one interface for every database."""

    #: The database URL without its password, for messages.
    url: str
    #: Alerts waiting for their webhooks (written with the changes that make them).
    outbox: Outbox

    def receive(
        self, delivery: Delivery, now: float, project_keys: frozenset[str] = frozenset()
    ) -> Outcome:
        """Settle one delivery in one transaction; the caller acks after this returns.

        ``project_keys`` are the keys given on the command line; with the keys of the
        registered jobs they make the set a message's ``project_key`` must belong to
        (no check when both are empty).
        """
        return self.receive_many([delivery], now, project_keys)[0]

    @abc.abstractmethod
    def receive_many(
        self,
        deliveries: Sequence[Delivery],
        now: float,
        project_keys: frozenset[str] = frozenset(),
    ) -> list[Outcome]:
        """Settle several deliveries in one transaction; one outcome per delivery, in order.

        The caller acks them all after this returns (a failure leaves them all unacked).
        A body that cannot be read or checked is a rejection, never an exception; what
        still fails (the database refused a row) fails the batch: see :meth:`settle_alone`.
        """

    @abc.abstractmethod
    def settle_alone(
        self, delivery: Delivery, now: float, project_keys: frozenset[str] = frozenset()
    ) -> Outcome:
        """Settle one delivery of a batch that failed, on its own.

        When the database refuses it even alone (and is not :meth:`outage`), it is kept as
        ``quarantined`` with the error, so that one message cannot block the queue.
        Raises when the database cannot be used at all: the caller then leaves it unacked.
        """

    def outage(self, exc: BaseException) -> bool:
        """True when ``exc`` says the database cannot be used now (down, locked, full),
        rather than that it refused one message."""
        return isinstance(exc, StoreError)

    @abc.abstractmethod
    def mark_stale(self, now: float, stale_after: float) -> list[tuple[str, str]]:
        """Turn running jobs silent for more than ``stale_after`` s ``abnormal``."""

    @abc.abstractmethod
    def register(
        self,
        kind: Kind,
        job_id: str,
        project_key: str,
        model_write_path: str,
        config_path: str,
        *,
        reset: bool = False,
        now: float | None = None,
    ) -> JobRecord:
        """Record a job from its training config (``waiting`` until its first message).

        A job that already exists keeps its state unless ``reset``.
        """

    @abc.abstractmethod
    def jobs(self) -> list[JobRecord]:
        """Every job, newest first."""

    @abc.abstractmethod
    def job(self, kind: str, job_id: str) -> JobRecord | None:
        """One job, or None."""

    @abc.abstractmethod
    def job_page(self, query: JobQuery) -> JobPage:
        """A page of the jobs ``query`` asks for."""

    @abc.abstractmethod
    def state_counts(self, query: JobQuery) -> dict[JobState, int]:
        """How many jobs match ``query`` in each state (its state filter left out)."""

    @abc.abstractmethod
    def jobs_changed_since(self, since: float) -> list[JobRecord]:
        """The jobs whose row was written at or after ``since`` (the writer's clock)."""

    @abc.abstractmethod
    def job_counts(self) -> dict[tuple[Kind, JobState], int]:
        """How many jobs there are of each kind in each state (the pairs that occur)."""

    @abc.abstractmethod
    def timeline(self, kind: str, job_id: str) -> list[Transition]:
        """The job's state changes, oldest first."""

    @abc.abstractmethod
    def messages(
        self,
        *,
        kind: str | None = None,
        job_id: str | None = None,
        rejected_only: bool = False,
        outcome: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[MessageRecord]:
        """The message log, newest first, filtered."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of logged messages per rejection reason (applied ones are not counted)."""

    @abc.abstractmethod
    def prune(self, cutoff: float, states: Collection[JobState]) -> Pruned:
        """Forget the jobs in ``states`` unchanged since ``cutoff`` (epoch seconds): their
        rows, message logs and timelines (see ``_prune``)."""

    @abc.abstractmethod
    def trim_messages(self, keep: int, after: int) -> tuple[int, int]:
        """Keep the newest ``keep`` logged messages of each job that logged one after row
        ``after``; the next ``after`` and how many rows were deleted."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection."""
