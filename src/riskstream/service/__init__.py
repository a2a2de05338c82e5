"""Running services: wiring from settings (:mod:`.runtime`), the one HTTP serve shell
(:mod:`.server`), the embedded all-in-one run (:mod:`.embedded`) and the Kafka scorer worker
(:mod:`.worker`).

Contract: a service builds a :class:`~riskstream.service.runtime.Runtime` (core, stores,
metrics, model registry), drives a :class:`~riskstream.pipeline.Pipeline` until asked to
stop, and on SIGINT/SIGTERM finishes and commits the batch in hand before it exits. The HTTP
app is passed in (an ``app_factory``), so services never import the interfaces above them.
"""
