"""`fleet bench`: cold start, warm path, size and build time, against the seed design and a floor."""
