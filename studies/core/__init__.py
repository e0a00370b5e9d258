"""The study infrastructure: cells and seeds, Monte Carlo helpers, records and locks, executors, the
run loop, provenance, sizing, captions and plotting, the statistics (z-tests, intervals, power; rank
tests) and the estimator rankings that studies summarize with (one module each)."""
