"""The Flower glue at a centre: the ClientApp, its runtime, and one centre task."""
