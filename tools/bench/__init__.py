"""Benchmarks (``make bench``): the pipeline's stages and end-to-end run
(:mod:`.pipeline`) and raw embedding throughput (:mod:`.embed`)."""
