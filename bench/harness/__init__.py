"""The jwtgate benchmark harness: `python -m harness prepare` and `python -m harness run`, driven by bench/run.sh."""
