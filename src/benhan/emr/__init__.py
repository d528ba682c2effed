"""The facility EMR as people use it: registration, queue, chart, orders, results (issue 5)."""
