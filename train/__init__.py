"""Training side: data sets, crop cache, model architectures, fitting and evaluation (needs `edgeag[train]`)."""
