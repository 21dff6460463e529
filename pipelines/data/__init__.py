"""Ray data work: training windows of climate stores (``climate_windows``) and images (``images``)
through Ray Data, and normalisation statistics of large stores as Ray tasks (``statistics``)."""
