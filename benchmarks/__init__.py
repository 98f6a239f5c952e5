"""Benchmarks: run on demand (`python benchmarks/run.py`), never by the tests; `reference.py` is also a
baseline the tests compare against. Importable as a package from a checkout (the editable install puts the
repository on sys.path).
"""
