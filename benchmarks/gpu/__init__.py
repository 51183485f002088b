"""The GPU run (issue 20): CUDA correctness, then the local speed benchmark at the 8B shape,
in one device call. ``run.sh`` is the entry point; ``prepare.sh`` builds what it carries."""
