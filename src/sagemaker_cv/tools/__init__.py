"""Command-line tools beside training: the CreateAlgorithm spec, the README tables, the example data."""
