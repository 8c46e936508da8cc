"""The foundation every layer may use: errors, paths, progress bars, quiet start-up."""
