"""Tests of `exegraph_otel` (a package, so its module names never clash with the engine's)."""
