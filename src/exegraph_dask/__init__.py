"""exegraph_dask: run exegraph steps on a Dask distributed cluster (SPEC 2.4)."""
