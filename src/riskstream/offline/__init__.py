"""Offline work on the one scoring core: replay files (read by :mod:`riskstream.io`) to train
or score (:mod:`.replay`), rebuild state from stored history (:mod:`.profiles`), and measure
detection quality honestly (:mod:`.evaluation`, :mod:`.evaluate`).

Contract: every score computed here comes from :class:`~riskstream.scoring.ScoringCore`, in
time order, exactly as the stream would have computed it; labels never reach training.
"""
