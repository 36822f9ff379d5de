"""The operator's own observability: structured logs with incident/step context, secret redaction, metrics."""
