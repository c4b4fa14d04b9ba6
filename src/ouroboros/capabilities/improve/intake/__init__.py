"""Telemetry intake: events in, sanitized and stored.

- :mod:`.events`: the event schema and its normalisation;
- :mod:`.otlp` and :mod:`.collectors`: OTLP/JSONL readers;
- :mod:`.sanitizer` and :mod:`.secret_rules`: redaction before anything is stored;
- :mod:`.store`: the day-partitioned :class:`TelemetryStore`;
- :mod:`.runtime`: the runtime's own outcomes (ledger cursor) into the store;
- :mod:`.spans` and :mod:`.spool`: the runtime's own spans into the store (batched from
  a live tracer provider; spooled raw by lean processes and taken by the next reader);
- :mod:`.synthetic`: the synthetic telemetry generator for demos and benchmarks.
"""
