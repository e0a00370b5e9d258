"""The study infrastructure: cells and seeds, Monte Carlo helpers, records and locks, executors, the
run loop, provenance, sizing, captions and plotting (one module each)."""
