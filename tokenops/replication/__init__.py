"""Several regions, one central count: MirrorMaker 2's replication lag, measured and served."""
