"""Judging a trained model: test-split metrics, generation from a checkpoint, and functional
checks of the Elixir it writes (does it parse, is it clean, do the tests pass)."""
