"""Kafka streaming: scorer workers in a consumer group, the producer, the benchmark.

Contract: :class:`~riskstream.streaming.worker.KafkaWorker` runs the same
:class:`~riskstream.pipeline.Pipeline` as the embedded run, on
:mod:`riskstream.transport.kafka`; :mod:`.partition_state` makes in-memory user state follow
partition assignments; :mod:`.produce` feeds the input topic; :mod:`.bench` measures
throughput and latency through a broker. The design and its guarantees: ``docs/streaming.md``.
Importing this package needs ``confluent-kafka`` (the ``kafka`` extra) only in the submodules.
"""
