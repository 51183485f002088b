"""Benchmarks: scripts that measure, never tests.

The speed, frontier and serve benchmarks and the GPU run are modules, run from the
repository root as ``python -m benchmarks.speed_local`` (``speed_served``, ``frontier``,
``serve_overhead``, ``mechanism_knobs``, ``generate_concurrency``, ``gpu.check``): they import
``benchmarks.*`` and the vLLM launcher the tests use (``tests.servers``) as ordinary
packages, with no path edits. The quality scripts
still run as files (``python benchmarks/quality.py``) and import their siblings by name.
"""
