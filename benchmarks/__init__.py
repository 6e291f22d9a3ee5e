"""Strata's benchmark harness: Strata side by side with raw LMDB, SQLite, diskcache and etcd.

Run ``python -m benchmarks --quick`` (under a minute) or ``python -m benchmarks`` (full, ~15-20 min);
``pytest benchmarks/`` runs the pytest-benchmark micro-benchmarks. See docs/benchmarks.md.
"""
