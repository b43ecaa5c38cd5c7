"""The protocol as data: message words and shapes, limits, validation, the job state machine,
the training config's keys and the file layout. Imports nothing of trainwire but ``_errors``."""
