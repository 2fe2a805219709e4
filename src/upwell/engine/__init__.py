"""The pipeline: planner, reader, throttle, retry, and the loop that drives a target."""
