"""The one aggregation path: token sums per price-uniform group from the store, priced as groups;
closed hours in memory (rollups), open hours read incrementally (rows). Lenses and watchers read
`Groups` from here and never run SQL."""
