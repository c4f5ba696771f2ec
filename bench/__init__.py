"""Benchmarks of tactful: they print figures and assert nothing.

Not part of the ``tactful`` wheel (``pyproject.toml`` builds only ``streams``):
they run from a checkout, as ``python -m bench replay`` (``make bench-engine``)
and ``python -m bench pipeline`` (``make bench``), and use only tactful's
public modules. The pipeline benchmark starts workers and the naive Faust peer
with the checkout as their working folder, and the Quix Streams peer by path
from its own virtualenv (``.venv-quix``).
"""
