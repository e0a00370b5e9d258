"""Shipped adapters: favor-bench itself (the control) and performer-pytorch (PyPI)."""
