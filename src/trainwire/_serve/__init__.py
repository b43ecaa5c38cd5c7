"""``trainwire serve``: a faithful local platform that receives, tracks and shows jobs.

- :mod:`._app`: the server wired together (the command line only parses and calls it);
- :mod:`._source`: where to consume from (broker URLs, several for a cluster, or a config);
- :mod:`._store`: jobs and the message log in SQLite or PostgreSQL, one interface;
- :mod:`._receiver`: the AMQP consumer (manual acks after the store commits) and the
  stale-job watcher;
- :mod:`._registry`: jobs registered from their training config files;
- :mod:`._alerts`: webhook alerts on state changes, sent from the store's outbox;
- :mod:`._retention`: ``--keep-messages``, trimming each job's message log;
- :mod:`._web`: the web page, the JSON API and the live event stream.

See docs/serve.md.
"""

from __future__ import annotations
