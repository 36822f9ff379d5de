"""The operator's own observability: structured logs with incident/step context, secret redaction, metrics.

It observes and must not change what the operator decides or does.
"""
