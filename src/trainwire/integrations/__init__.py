"""One line to report a framework's training: a callback per framework.

Each module imports its framework, so import the one you use (extras in parentheses)::

    trainwire.integrations.transformers   TrainwireCallback        (trainwire[transformers])
    trainwire.integrations.lightning      TrainwireCallback,       (trainwire[lightning])
                                          TrainwireLogger
    trainwire.integrations.keras          TrainwireCallback        (trainwire[keras])
    trainwire.integrations.xgboost        TrainwireCallback        (trainwire[xgboost])
    trainwire.integrations.lightgbm       trainwire_callback()     (trainwire[lightgbm])

For a plain loop there is :func:`trainwire.track`. Every integration reads the config
as :func:`trainwire.init` does (``config=`` or ``$TRAINWIRE_CONFIG``) or takes an open
``run=``; see docs/integrations.md.
"""
