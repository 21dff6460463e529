"""Climate and image data: the channel vocabulary, readers of several store layouts, the climate
store writer, normalisation statistics, training windows, the shallow-water generator and images.

``open_climate`` (in ``readers``) is the way in: it opens swarmcast, WeatherBench2 and
ARCO-ERA5 layouts as one canonical lazy dataset.
"""
