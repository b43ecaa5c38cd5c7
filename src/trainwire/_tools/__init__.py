"""One-shot and supervising tools built on the SDK: ``trainwire run``'s supervisor and its
progress parsing, the preflight checklist, reading graph files back (``metrics check``)."""
