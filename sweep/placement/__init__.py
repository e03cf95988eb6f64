"""Where penalties can go: a model's slots, the selector grammar, the search space."""
