"""The figure-drawing code of the studies: one module per study whose figures and computed captions
outgrew its study module, named after it.

A module here draws figures and writes captions from a study's CSV rows; it decides no record value,
so it is not part of a study's code fingerprint (:mod:`studies.core.provenance`). It never imports its
study module: what a figure needs beyond the rows, the study passes in.
"""
