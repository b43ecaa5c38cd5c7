"""Where ``trainwire serve`` keeps jobs and messages: one interface, SQLite and PostgreSQL.

- :mod:`._records`: what the store takes and gives (deliveries, outcomes, jobs, messages);
- :mod:`._text`: storable text, limits, times, masked keys; :mod:`._api`: the API's JSON;
- :mod:`._intake`: reading a body (never raises); :mod:`._rule`: the ordering rule;
- :mod:`._base`: the interface; :mod:`._sql` (with :mod:`._batch`, :mod:`._jobs`,
  :mod:`._log`, :mod:`._keys`, :mod:`._schema`, :mod:`._tx`): the shared SQL;
- :mod:`._dialect`, :mod:`._sqlite`, :mod:`._postgres`: what differs between databases;
- :mod:`._outbox` (events from :mod:`._changes`): alerts written in the transaction of
  the change, for ``_serve._alerts`` to send; :mod:`._prune`: retention;
- :mod:`._open`: a database URL to a store.

Deliveries are settled in **one transaction** per batch (:meth:`Store.receive_many`), and
acknowledged by the receiver only after the commit (see :mod:`._batch` and :mod:`._sql`).
Every string written passes :func:`~._text.storable` (no lone surrogate, no NUL: neither
database nor the JSON API could take them); an AMQP ``message_id`` that is not UTF-8 is
written with escapes and a timestamp far in the future is taken as the receive time.
"""

from __future__ import annotations

from ._api import job_json, message_json, transition_json
from ._base import Store
from ._listing import JobPage, JobQuery, SortKey, decode_cursor
from ._open import DEFAULT_DB_URL, open_store
from ._records import (
    APPLIED,
    MAX_BODY,
    OUTCOMES,
    Delivery,
    JobRecord,
    MessageRecord,
    Outcome,
    StoreError,
    StoreRejection,
    Transition,
)
from ._rule import settle
from ._text import iso_time, mask_key

__all__ = [
    "APPLIED",
    "DEFAULT_DB_URL",
    "MAX_BODY",
    "OUTCOMES",
    "Delivery",
    "JobPage",
    "JobQuery",
    "JobRecord",
    "MessageRecord",
    "Outcome",
    "SortKey",
    "Store",
    "StoreError",
    "StoreRejection",
    "Transition",
    "decode_cursor",
    "iso_time",
    "job_json",
    "mask_key",
    "message_json",
    "open_store",
    "settle",
    "transition_json",
]
