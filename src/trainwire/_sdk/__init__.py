"""What a training process runs: ``Run``, its lifecycle, the local transports, distributed
ranks, ``track``, friendly explanations and the metrics writer."""
