"""ScalingPolicy decisions: the HPA v2 algorithm plus schedules, incident floors, fallback and workers.

Pure: every function takes the samples, the spec, the history and `now` as arguments and returns new
values; nothing here reads a clock, a metric or the Kubernetes API. `decision.decide` is the entry point.
"""
