"""Ray Data sources: training windows of climate stores (``climate_windows``) and images (``images``)."""
