"""Shipped adapters. :data:`TARGETS` maps each audit target name to the ``module:factory`` that
builds its :class:`~studies.audit.protocol.Adapter`; add a line here to ship a new one. Factories
are imported only when their target is loaded, so an optional library that is not installed only
affects its own target. ``<name>:<argument>`` calls the factory with the argument
(``favor-bench:trig-iid``, ``planted:qr-no-sign-fix``)."""

TARGETS = {
    "favor-bench": "studies.audit.adapters.favor_bench:adapter",
    "performer-pytorch": "studies.audit.adapters.performer_pytorch:adapter",
    "planted": "studies.audit.planted:adapter",
    "srf-attention": "studies.audit.adapters.srf_attention:adapter",
    "torch-geometric": "studies.audit.adapters.torch_geometric:adapter",
    "google-research": "studies.audit.adapters.google_research:adapter",
    "pytorch-fast-transformers": "studies.audit.adapters.fast_transformers:adapter",
    "tf-models-official": "studies.audit.adapters.tf_kernel_attention:adapter",
    "xformers": "studies.audit.adapters.xformers_favor:adapter",
}
