"""som engine: the pipeline stages and the two drivers that run them."""
