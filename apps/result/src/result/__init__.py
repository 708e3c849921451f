"""Live results: a Quart app that pushes the tallies to every browser over a websocket."""
