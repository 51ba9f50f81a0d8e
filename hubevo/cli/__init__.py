"""The command line: `hubevo demo | evolve | worker | space | export | jobs` (`main`)."""
