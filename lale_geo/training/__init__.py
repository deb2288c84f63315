"""Making and checking weights: labelled ``datasets``, ``augment``, the ``trainer``, ``evaluation`` and
``metrics``, ``quantize`` (INT8, checked against fp32) and ``adaptation`` to a new area."""
